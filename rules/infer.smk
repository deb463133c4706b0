# Accuracy over the whole test set, and throughput per batch size, on the chip.


rule measure_accuracy:
    input:
        compiled=lambda wc: compiled_dir(
            wc.model,
            wc.chip,
            wc.precision,
            PLAN.accuracy_batch_size(wc.model, wc.chip),
        ),
        inputs="results/data/{model}/test_inputs.npy",
        labels="results/data/{model}/test_labels.npy",
        preprocess="results/data/{model}/test_preprocess.json",
        weights="results/models/{model}/weights.json",
        input_files=input_files,
    output:
        record="results/{model}/{chip}/{precision}/accuracy.json",
        outputs="results/{model}/{chip}/{precision}/outputs.npy",
    log:
        "logs/measure_accuracy/{model}_{chip}_{precision}.log",
    conda:
        "../envs/main.yaml"
    threads: device_threads
    resources:
        **device_resources(),
        **placement_resources(timing=True),
    params:
        model=model_recipe,
        chip=chip_recipe,
        batch_size=lambda wc: PLAN.accuracy_batch_size(wc.model, wc.chip),
        images=lambda wc: PLAN.accuracy_images(wc.chip),
        metrics=metric_settings,
        seed=config["seed"],
    script:
        "../workflow_scripts/measure_accuracy.py"


rule measure_throughput:
    input:
        compiled=lambda wc: compiled_dir(wc.model, wc.chip, wc.precision, wc.batch),
        inputs="results/data/{model}/test_inputs.npy",
        weights="results/models/{model}/weights.json",
    output:
        "results/{model}/{chip}/{precision}/bs{batch}/perf.json",
    log:
        "logs/measure_throughput/{model}_{chip}_{precision}_bs{batch}.log",
    conda:
        "../envs/main.yaml"
    threads: device_threads
    resources:
        **device_resources(),
        **placement_resources(timing=True),
    params:
        chip=chip_recipe,
        timing=config["timing"],
    script:
        "../workflow_scripts/measure_throughput.py"


rule check_accuracy_gate:
    input:
        record="results/{model}/{chip}/{precision}/accuracy.json",
        outputs="results/{model}/{chip}/{precision}/outputs.npy",
        reference_record=reference_input("accuracy.json"),
        reference_outputs=reference_input("outputs.npy"),
        labels="results/data/{model}/test_labels.npy",
    output:
        "results/{model}/{chip}/{precision}/gate.json",
    log:
        "logs/check_accuracy_gate/{model}_{chip}_{precision}.log",
    conda:
        "../envs/main.yaml"
    resources:
        **placement_resources(device=False),
    params:
        gate=config["gate"],
        metrics=metric_settings,
        seed=config["seed"],
    script:
        "../workflow_scripts/check_accuracy_gate.py"
