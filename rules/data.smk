# CIFAR-10: download (md5-checked), extract, preprocess per model (as arrays, and as one
# file per image for chips whose tool reads input files).


rule download_cifar10:
    output:
        DATASET_ARCHIVE,
    log:
        "logs/download_cifar10.log",
    conda:
        "../envs/main.yaml"
    params:
        url=config["dataset"]["url"],
        md5=config["dataset"]["md5"],
    script:
        "../workflow_scripts/download_cifar10.py"


rule extract_cifar10:
    input:
        DATASET_ARCHIVE,
    output:
        test="results/data/cifar-10-batches-py/test_batch",
        train=expand(
            "results/data/cifar-10-batches-py/data_batch_{i}",
            i=range(1, config["dataset"]["train_batches"] + 1),
        ),
    log:
        "logs/extract_cifar10.log",
    conda:
        "../envs/main.yaml"
    params:
        test_images=config["dataset"]["test_images"],
    script:
        "../workflow_scripts/extract_cifar10.py"


rule preprocess_test_set:
    input:
        "results/data/cifar-10-batches-py/test_batch",
    output:
        inputs="results/data/{model}/test_inputs.npy",
        labels="results/data/{model}/test_labels.npy",
        timing="results/data/{model}/test_preprocess.json",
    log:
        "logs/preprocess_test_set/{model}.log",
    conda:
        "../envs/main.yaml"
    params:
        model=model_recipe,
        seed=config["seed"],
    script:
        "../workflow_scripts/preprocess.py"


rule preprocess_calibration_set:
    input:
        "results/data/cifar-10-batches-py/data_batch_1",
    output:
        inputs="results/data/{model}/calibration_inputs.npy",
        labels="results/data/{model}/calibration_labels.npy",
    log:
        "logs/preprocess_calibration_set/{model}.log",
    conda:
        "../envs/main.yaml"
    params:
        model=model_recipe,
        seed=config["seed"],
        limit=config["dataset"]["calibration_images"],
    script:
        "../workflow_scripts/preprocess.py"


rule write_input_files:
    input:
        "results/data/{model}/test_inputs.npy",
    output:
        directory("results/data/{model}/input_files"),
    log:
        "logs/write_input_files/{model}.log",
    conda:
        "../envs/main.yaml"
    script:
        "../workflow_scripts/write_input_files.py"
