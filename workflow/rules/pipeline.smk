for dvc_stage in DVC_STAGES:

    rule:
        name:
            dvc_stage["name"]
        input:
            dvc_stage["input"],
        output:
            [as_output(path) for path in dvc_stage["output"]],
        params:
            cmd=dvc_stage["cmd"],
            stage=dvc_stage["addressing"],
            values=dvc_stage["params"],
        resources:
            mem_mb=8000,
        # Each finished job is recorded in dvc.lock at once (DVC's lock serialises concurrent jobs), so that
        # after a run that stopped half-way DVC, and through it Snakemake, still knows which stages are done.
        shell:
            "{params.cmd} && dvc --wait-for-lock commit --force --quiet {params.stage}"
