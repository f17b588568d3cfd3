for dvc_stage in DVC_STAGES:

    rule:
        name:
            dvc_stage["name"]
        input:
            dvc_stage["input"],
        output:
            [as_output(path, dvc_stage) for path in dvc_stage["output"]],
        log:
            f"logs/{dvc_stage['name']}.log",
        group:
            dvc_stage["group"]
        conda:
            "../envs/seqnlp.yaml"
        threads: dvc_stage["resources"]["threads"]
        resources:
            mem_mb=dvc_stage["resources"]["mem_mb"],
            runtime=dvc_stage["resources"]["runtime"],
            gpu=dvc_stage["resources"]["gpu"],
        params:
            cmd=dvc_stage["cmd"],
            stage=dvc_stage["addressing"],
            values=dvc_stage["params"],
        # DVC runs the job: it restores the outputs from its run-cache when it holds a run of this exact
        # command, params and inputs (no retraining after a deletion), else runs the command with its lock
        # released, and records the stage in dvc.lock at once (its lock serialises concurrent jobs), so that
        # after a run that stopped half-way DVC, and through it Snakemake, still knows which stages are done.
        shell:
            "dvc --wait-for-lock repro --single-item {params.stage} > {log} 2>&1"
