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
        # Each finished job is recorded in dvc.lock at once (DVC's lock serialises concurrent jobs), so that
        # after a run that stopped half-way DVC, and through it Snakemake, still knows which stages are done.
        shell:
            "({params.cmd} && dvc --wait-for-lock commit --force --quiet {params.stage}) > {log} 2>&1"
