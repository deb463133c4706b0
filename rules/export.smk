# PyTorch model -> ONNX (or a bring-your-own ONNX taken as it is).


rule export_onnx:
    input:
        checkpoint=checkpoint_input,
        records=lambda wildcards: training_records(wildcards.model),
        # Not read: waits for the dataset's checks (extract_cifar10), so a bad dataset stops
        # the run before any export or compile; ancient: a re-extraction reruns nothing here.
        dataset_checked=ancient(rules.extract_cifar10.output.test),
    output:
        onnx="results/models/{model}/model.onnx",
        check="results/models/{model}/export_check.json",
        weights="results/models/{model}/weights.json",
    log:
        "logs/export_onnx/{model}.log",
    wildcard_constraints:
        model=alternatives(EXPORTED_MODELS),
    conda:
        "../envs/main.yaml"
    params:
        model=model_recipe,
        seed=config["seed"],
        opset=config["export"]["opset"],
        check_batch=config["export"]["check_batch"],
    script:
        "../workflow_scripts/export_onnx.py"


rule import_onnx:
    input:
        onnx=lambda wildcards: PLAN.models[wildcards.model]["onnx"],
        dataset_checked=ancient(rules.extract_cifar10.output.test),  # as in export_onnx
    output:
        onnx="results/models/{model}/model.onnx",
        check="results/models/{model}/export_check.json",
        weights="results/models/{model}/weights.json",
    log:
        "logs/import_onnx/{model}.log",
    wildcard_constraints:
        model=alternatives(IMPORTED_MODELS),
    conda:
        "../envs/main.yaml"
    script:
        "../workflow_scripts/import_onnx.py"
