for dvc_stage in DVC_STAGES:

    rule:
        name:
            dvc_stage["name"]
        input:
            dvc_stage["input"],
        output:
            dvc_stage["output"],
        params:
            cmd=dvc_stage["cmd"],
            values=dvc_stage["params"],
        resources:
            mem_mb=8000,
        shell:
            "{params.cmd}"
