# ONNX -> the chip's artefact, per chip x precision (x batch size where the chip's backend
# compiles one artefact per batch size: it names the {shape} folder).


# The first compile step when it is the same for every precision (backends that
# `transforms_model`): once per artefact folder. Temporary: each compile copies what it needs.
rule transform_model:
    input:
        onnx="results/models/{model}/model.onnx",
        calibration="results/data/{model}/calibration_inputs.npy",
    output:
        temp(directory("results/compiled/{model}/{chip}/transformed/{shape}")),
    log:
        "logs/transform_model/{model}_{chip}_{shape}.log",
    conda:
        "../envs/main.yaml"
    resources:
        **placement_resources(),
    params:
        chip=chip_recipe,
        batch_size=compiled_batch_size,
    script:
        "../workflow_scripts/transform_model.py"


rule compile_model:
    input:
        onnx="results/models/{model}/model.onnx",
        calibration=calibration_input,
        model_source=model_source_input,
        transformed=transformed_input,
    output:
        directory("results/compiled/{model}/{chip}/{precision}/{shape}"),
    log:
        "logs/compile_model/{model}_{chip}_{precision}_{shape}.log",
    conda:
        "../envs/main.yaml"
    resources:
        **placement_resources(),
    params:
        chip=chip_recipe,
        batch_size=compiled_batch_size,
        model=compile_model_keys,
    script:
        "../workflow_scripts/compile_model.py"
