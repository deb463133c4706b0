# Reproducible weights: train the built-in models when no checkpoint is given (config `train`),
# and the SimCLR linear probe. The recipes are in chipbench/train.py.
#
#   train_simclr           results/models/{model}/trained.pth      sthalles layout
#   pretrain_simclrv2      results/models/{model}/pretrained.pth   stage 1: f.* + g.*
#   train_simclrv2_linear  results/models/{model}/trained.pth      stage 2: f.* + fc.*
#   evaluate_linear_probe  results/{model}/linear_probe.json       SimCLR-arch models
#
# A killed training job leaves <checkpoint>.resume.pt (not an output, so Snakemake keeps it);
# rerunning the same target with the same settings continues after the last finished epoch.


rule train_simclr:
    input:
        batches=training_batches,
    output:
        checkpoint="results/models/{model}/trained.pth",
        record="results/models/{model}/trained.json",
    log:
        "logs/train_simclr/{model}.log",
    wildcard_constraints:
        model=alternatives(trained_models("simclr")),
    conda:
        "../envs/main.yaml"
    threads: train_threads
    params:
        settings=lambda wildcards: train_settings(wildcards.model),
        device=config["train"]["device"],
        seed=config["seed"],
    script:
        "../workflow_scripts/train_simclr.py"


rule pretrain_simclrv2:
    input:
        batches=training_batches,
    output:
        checkpoint="results/models/{model}/pretrained.pth",
        record="results/models/{model}/pretrained.json",
    log:
        "logs/pretrain_simclrv2/{model}.log",
    wildcard_constraints:
        model=alternatives(trained_models("simclrv2")),
    conda:
        "../envs/main.yaml"
    threads: train_threads
    params:
        settings=lambda wildcards: train_settings(wildcards.model)["pretrain"],
        model=model_recipe,
        device=config["train"]["device"],
        seed=config["seed"],
    script:
        "../workflow_scripts/train_simclrv2.py"


rule train_simclrv2_linear:
    input:
        batches=training_batches,
        pretrained="results/models/{model}/pretrained.pth",
        pretrained_record="results/models/{model}/pretrained.json",
    output:
        checkpoint="results/models/{model}/trained.pth",
        record="results/models/{model}/trained.json",
    log:
        "logs/train_simclrv2_linear/{model}.log",
    wildcard_constraints:
        model=alternatives(trained_models("simclrv2")),
    conda:
        "../envs/main.yaml"
    threads: train_threads
    params:
        settings=lambda wildcards: train_settings(wildcards.model)["linear"],
        model=model_recipe,
        device=config["train"]["device"],
        seed=config["seed"],
    script:
        "../workflow_scripts/train_simclrv2.py"


rule evaluate_linear_probe:
    input:
        checkpoint=lambda wildcards: weights_checkpoint(wildcards.model) or [],
        records=lambda wildcards: training_records(wildcards.model),
        batches=training_batches,
        test=rules.extract_cifar10.output.test,
    output:
        "results/{model}/linear_probe.json",
    log:
        "logs/evaluate_linear_probe/{model}.log",
    wildcard_constraints:
        model=alternatives(PROBED_MODELS),
    conda:
        "../envs/main.yaml"
    threads: train_threads
    params:
        settings=config["train"]["linear_probe"],
        model=model_recipe,
        device=config["train"]["device"],
        seed=config["seed"],
    script:
        "../workflow_scripts/linear_probe.py"
