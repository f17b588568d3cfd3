"""The ``seqnlp`` command: one subcommand per pipeline stage, plus the trained models' front doors.

dvc.yaml and the Snakemake rules call these subcommands; heavy imports (trax, TensorFlow) happen
inside each command so that ``--help`` answers at once.
"""

import argparse
import dataclasses
import os
import signal
import sys
from pathlib import Path

from seqnlp import __version__, serving
from seqnlp.errors import UserError
from seqnlp.params import enter_repository_root, repository_root

TASK_STAGES = {  # subcommand: (one-line help, longer description)
    "download": ("fetch the raw data (upstream when online, or $SEQNLP_DATA_MIRROR) and verify checksums", None),
    "filter": ("parse and clean the raw data, drop unusable rows and report what was dropped and why", None),
    "tokenize": ("build the vocabulary on the training split and encode every split to integer ids", None),
    "train": ("train the task's model with trax's training.Loop",
              "Train with trax's training.Loop, checkpointing to checkpoints/TASK. An interrupted run (Ctrl-C, a "
              "kill, a crash) resumes exactly where its last checkpoint stopped when run again; checkpoints made "
              "with other params, data or code are set aside. models/TASK is replaced only when training "
              "finishes."),
    "evaluate": ("score the trained model on the held-out split",
                 "Score the trained model on the whole held-out split; write metrics/TASK.json and the plot data "
                 "under plots/TASK/eval."),
}


def _model_options(parser, answers):
    """--model TASK (the checkout's package of a task whose predictor ``answers`` this command; default: the first
    in params.yaml) or --package FOLDER."""
    parser.add_argument("--model", metavar="TASK",
                        help=f"the task whose trained model {answers} (default: the first task of params.yaml whose "
                             "model can; see `seqnlp tasks`)")
    parser.add_argument("--package", type=Path, metavar="FOLDER",
                        help="run the model package in FOLDER (made by `seqnlp package`, or fetched with "
                             "`dvc artifacts get`), from anywhere, instead of this repository's")


def _task_argument(parser):
    parser.add_argument("task", help="a task named in params.yaml's tasks: (topics, shakespeare, ner_gmb, ...)")


def _run_data_stage(args):
    from seqnlp.stages import data

    data.run(args.command, args.task)


def _run_train(args):
    from seqnlp.stages import train

    train.run(args.task)


def _run_evaluate(args):
    from seqnlp.stages import evaluate

    evaluate.run(args.task)


def _model(args):
    """The predictor of --package, else of the checkout's package of --model or of the first task whose model
    answers this command (seqnlp.load); a one-line error when that model cannot answer it."""
    import seqnlp
    from seqnlp import contract

    def able():  # read only when needed: it imports every task module
        return [] if args.package else contract.tasks_with(command=args.command)

    source = args.package or args.model or next(iter(able()), None)
    if source is None:
        raise UserError(f"no task of params.yaml has a model that answers `seqnlp {args.command}`")
    model = seqnlp.load(source)
    if not hasattr(model, contract.COMMANDS[args.command]):
        can = able()
        raise UserError(f"{source} is a {type(model).__name__}, which cannot answer `seqnlp {args.command}`"
                        + (f"; models that can: {', '.join(can)}" if can else ""))
    return model


def _run_classify(args):
    [predicted] = _model(args).predict([args.text])
    print(predicted["label"])
    for name, probability in sorted(predicted["probabilities"].items(), key=lambda item: -item[1]):
        print(f"  {name:<10} {probability:.4f}")


def _read_lines(path, usage=None):
    """The lines of the UTF-8 file ``path``, or of stdin when it is None (``usage`` says what to give when
    stdin is a terminal), and the name errors cite them by."""
    if path is not None:
        try:
            return path.read_text(encoding="utf-8").splitlines(), str(path)
        except (OSError, UnicodeDecodeError) as error:
            raise UserError(f"cannot read {path}: {error}") from None
    if sys.stdin.isatty():
        raise UserError(usage)
    return sys.stdin.read().splitlines(), "stdin"


def _tag_inputs(args):
    """The texts to tag: the arguments, then the lines of --file, or of stdin when neither is given (or `-`)."""
    texts = [text for text in args.text if text != "-"]
    if args.file:
        texts += _read_lines(args.file)[0]
    if "-" in args.text or not (args.text or args.file):
        texts += _read_lines(None, "give a text to tag, --file PATH, or pipe text in (one text per line)")[0]
    texts = [text for text in texts if text.strip()]
    if not texts:
        raise UserError("nothing to tag: the input is empty")
    return texts


def _run_tag(args):
    import json

    model = _model(args)
    texts = _tag_inputs(args)
    tagged = model.tag(texts)
    if args.json:
        print(json.dumps([{"text": text, **entry} for text, entry in zip(texts, tagged)], ensure_ascii=False,
                         indent=2))
        return
    for entry in tagged:
        print(" ".join(f"{word}/{tag}" for word, tag in zip(entry["tokens"], entry["tags"])))
        for entity in entry["entities"]:
            print(f"  {entity['type']}: {entity['text']}")


def _pair_inputs(args):
    """Question pairs: the two arguments, else the lines of --file, or of stdin, as `question1 TAB question2`."""
    if args.questions:
        if len(args.questions) != 2:
            raise UserError(f"give two questions (or --file / stdin), got {len(args.questions)}")
        return [tuple(args.questions)]
    lines, source = _read_lines(args.file,
                                "give two questions, --file PATH, or pipe in lines of `question1 TAB question2`")
    pairs = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise UserError(f"{source}:{number}: expected `question1 TAB question2`, found {len(fields)} field(s)")
        pairs.append((fields[0], fields[1]))
    if not pairs:
        raise UserError(f"nothing to compare: {source} has no pairs")
    return pairs


def _run_duplicates(args):
    import json

    judged = _model(args).judge(_pair_inputs(args))
    if args.json:
        print(json.dumps(judged, ensure_ascii=False, indent=2))
        return
    for pair in judged:
        verdict = {True: "duplicate", False: "not duplicate",
                   None: "cannot tell: a question has no word the model knows"}[pair["duplicate"]]
        unknown = " ".join(f"(question {n + 1}: no known word, compared by its character n-grams only)"
                           for n, count in enumerate(pair["known_words"]) if not count and pair["duplicate"] is not None)
        print(f"{pair['similarity']:.4f}  {verdict} (threshold {pair['threshold']:.4f}) {unknown}".rstrip())
        if len(judged) > 1:
            print(f"  {pair['question1']}\n  {pair['question2']}")


def _run_similar(args):
    import json

    model = _model(args)
    if not model.meaningful(args.question):
        print("note: no word of the question is in the model's vocabulary; the neighbours mean nothing",
              file=sys.stderr)
    nearest = model.similar(args.question, args.top)
    if args.json:
        print(json.dumps(nearest, ensure_ascii=False, indent=2))
        return
    for entry in nearest:
        print(f"{entry['similarity']:.4f}  {entry['question']}")


def _run_serve(args):
    limits = serving.Limits(**{field.name: getattr(args, field.name) for field in dataclasses.fields(serving.Limits)})
    serving.serve(args.models, args.host, args.port, limits)


def _run_tasks(args):
    from seqnlp import contract

    rows = [("task", "module", "stages", "commands")]
    for task_name, module_name, module in contract.task_modules():
        rows.append((task_name, module_name, " ".join([*contract.EVERY_TASKS_STAGES, *contract.stages(module)]),
                     " ".join(contract.commands(module)) or "-"))
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])


def _run_export(args):
    from seqnlp.stages import export

    export.run(args.task)


def _run_package(args):
    from seqnlp.stages import package

    package.run(args.task)


def _run_index(args):
    from seqnlp import contract
    from seqnlp.stages import index

    contract.require(args.task, "index")
    index.run(args.task)


def _run_samples(args):
    from seqnlp import contract
    from seqnlp.stages import samples

    contract.require(args.task, "generate")
    samples.run(args.task)


def _run_generate(args):
    samples = _model(args).generate(args.prefix, args.n, args.length, args.temperature, args.seed)
    print("\n---\n".join(samples))


def _run_variant(args):
    from seqnlp import variants

    print(" ".join(variants.dvc_set_params(args.name)))


def _run_regenerate(args):
    from seqnlp import regenerate
    from seqnlp.params import repository_root

    mismatches, files, seconds, clone = regenerate.regenerate(
        repository_root(), args.rev, args.from_scratch, args.task, args.workdir, args.keep)
    kept = f"; the clone is kept in {clone}" if args.keep else ""
    if mismatches:
        for mismatch in mismatches:
            print(mismatch)
        raise UserError(f"{len(mismatches)} metric(s) of {args.rev} did not regenerate within "
                        f"{regenerate.TOLERANCES} ({seconds:.0f} s{kept})")
    print(f"{len(files)} metrics file(s) of {args.rev} regenerated within {regenerate.TOLERANCES}: "
          f"{', '.join(files)} ({seconds:.0f} s{kept})")


def _run_report(args):
    from seqnlp import report

    images = report.write_report(args.base, args.output)
    print(f"wrote {args.output} and {len(images)} plot image(s) under {args.output.parent / (args.output.stem + '-plots')}")


def _run_results(args):
    from seqnlp import results

    up_to_date = results.update(args.readme, check=args.check)
    if args.check and not up_to_date:
        raise UserError(f"{args.readme}'s results table is not what this commit's metrics make: run `seqnlp results`")
    print(f"{args.readme}: the results table is {'up to date' if up_to_date else 'rewritten'}")


def _run_plots(args):
    from seqnlp.stages import plots

    plots.run(args.directory, args.format)


def _run_slice(args):
    from seqnlp import small_slice

    destination = small_slice.make(args.directory, overrides=args.config)
    print(f"made {destination}, a copy of this project with the params of {args.config}; run it with\n"
          f"  cd {args.directory} && snakemake --profile workflow/profiles/default   (or: dvc repro)")


def _non_negative(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number >= 0 (0 is greedy), got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (0 is greedy), got {text}")
    return value


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _port(text):
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port, 0 to 65535, got {text!r}")
    return int(text)


def runs_anywhere(args):
    """Whether a command needs no repository: it runs model packages given as folders only."""
    given = [args.package] if getattr(args, "package", None) else getattr(args, "models", None)
    return bool(given) and all(isinstance(source, Path) for source in given)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="seqnlp",
        description="Train, evaluate and use classic sequence models with trax. Each stage reads its "
                    "section of params.yaml and writes under data/, models/, metrics/ and plots/; "
                    "`dvc repro` runs them all in order.",
    )
    parser.add_argument("--version", action="version", version=f"seqnlp {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    handlers = {"train": _run_train, "evaluate": _run_evaluate}
    for stage, (summary, description) in TASK_STAGES.items():
        stage_parser = commands.add_parser(stage, help=summary, description=description or summary)
        _task_argument(stage_parser)
        stage_parser.set_defaults(handler=handlers.get(stage, _run_data_stage))

    tasks_parser = commands.add_parser(
        "tasks", help="list params.yaml's tasks: each one's module, pipeline stages and the commands its model answers",
        description="List the tasks of params.yaml's tasks: with the module that runs each, the pipeline stages it "
                    "has (generate and index only where its module provides them, see seqnlp.contract) and the "
                    "commands its trained model answers.")
    tasks_parser.set_defaults(handler=_run_tasks)

    classify_parser = commands.add_parser(
        "classify", help="print the topic the trained topics model gives a text",
        description="Print the predicted AG News topic of TEXT and each topic's probability.")
    classify_parser.add_argument("text", help="a news title and/or description")
    _model_options(classify_parser, "classifies texts")
    classify_parser.set_defaults(handler=_run_classify)

    generate_parser = commands.add_parser(
        "generate", help="sample Shakespeare-like lines from the trained character model",
        description="Sample text from the trained Shakespeare GRU, one character at a time, by Gumbel-max "
                    "sampling on its log-probabilities. Each end-of-line the model predicts starts a new line. "
                    "The same seed gives the same text.")
    generate_parser.add_argument("--prefix", default="", help="text to start from (default: none)")
    generate_parser.add_argument("--temperature", type=_non_negative, default=1.0,
                                 help="scale of the Gumbel noise: 0 is greedy, 1 samples the model's distribution "
                                      "(default: 1.0)")
    generate_parser.add_argument("--n", type=_positive_int, default=1, help="how many samples (default: 1)")
    generate_parser.add_argument("--length", type=_positive_int, default=200,
                                 help="characters per sample (default: 200)")
    generate_parser.add_argument("--seed", type=int, default=0, help="random seed of the first sample (default: 0)")
    _model_options(generate_parser, "generates text")
    generate_parser.set_defaults(handler=_run_generate)

    tag_parser = commands.add_parser(
        "tag", help="print the named entities the trained NER model finds in texts",
        description="Split each text into words the way the corpora are (punctuation and clitics apart), tag "
                    "every word with the trained NER model (IOB2) and list the entities it finds. Texts come "
                    "from the arguments, from --file (one per line) or from stdin (one per line).")
    tag_parser.add_argument("text", nargs="*", help="texts to tag (`-` reads stdin)")
    tag_parser.add_argument("--file", type=Path, help="a UTF-8 file with one text per line")
    tag_parser.add_argument("--json", action="store_true", help="print JSON: tokens, tags and entities per text")
    _model_options(tag_parser, "tags entities (ner_gmb, ner_conll)")
    tag_parser.set_defaults(handler=_run_tag)

    duplicates_parser = commands.add_parser(
        "duplicates", help="say whether two questions are duplicates, with the trained Siamese model",
        description="Print the cosine similarity of two questions' encodings and the verdict at the threshold "
                    "chosen on the validation split. Pairs come from the two arguments, from --file or from "
                    "stdin (one `question1 TAB question2` per line).")
    duplicates_parser.add_argument("questions", nargs="*", help="two questions")
    duplicates_parser.add_argument("--file", type=Path, help="a UTF-8 file of `question1 TAB question2` lines")
    duplicates_parser.add_argument("--json", action="store_true", help="print JSON: similarity and verdict per pair")
    _model_options(duplicates_parser, "compares questions")
    duplicates_parser.set_defaults(handler=_run_duplicates)

    similar_parser = commands.add_parser(
        "similar", help="find the questions most similar to a question among those the model has seen",
        description="Encode QUESTION and print the most similar questions of the training and validation "
                    "pairs (the index stage's data/questions/index), with their cosine similarity.")
    similar_parser.add_argument("question", help="a question")
    similar_parser.add_argument("--top", type=_positive_int, default=5, help="how many questions (default: 5)")
    similar_parser.add_argument("--json", action="store_true", help="print JSON: question and similarity")
    _model_options(similar_parser, "finds similar questions")
    similar_parser.set_defaults(handler=_run_similar)

    serve_parser = commands.add_parser(
        "serve", help="answer the trained models' commands as JSON over HTTP, with a page to try them",
        description="Load each MODEL once (a model package folder, or a task of this checkout; default: every "
                    "task whose model answers a command), then answer POST /classify, /generate, /tag, "
                    "/duplicates and /similar with JSON, each taking a batch, until Ctrl-C or SIGTERM. GET / is "
                    "a page to try them, /models the models' cards, /health a liveness check and /docs the "
                    "OpenAPI description. Binds to 127.0.0.1 unless --host says otherwise.")
    serve_parser.add_argument("models", nargs="*", metavar="MODEL", type=serving.package_folder_or_task,
                              help="a model package folder or a task name (default: every task with a model)")
    serve_parser.add_argument("--host", default="127.0.0.1",
                              help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 for "
                                   "every interface)")
    serve_parser.add_argument("--port", type=_port, default=8000, help="TCP port (default: 8000; 0 picks a free one)")
    for field in dataclasses.fields(serving.Limits):
        serve_parser.add_argument(f"--{field.name.replace('_', '-')}", type=_positive_int, default=field.default,
                                  help=f"{field.metadata['help']} (default: {field.default})")
    serve_parser.set_defaults(handler=_run_serve)

    index_parser = commands.add_parser(
        "index", help="encode the questions the model has seen, for `similar` (the pipeline's index stage)",
        description="Write data/TASK/index: the unit vectors of every distinct training and validation "
                    "question and the threshold chosen on validation.")
    index_parser.add_argument("task", help="a task whose module builds an index (questions)")
    index_parser.set_defaults(handler=_run_index)

    export_parser = commands.add_parser(
        "export", help="write the trained model's forward pass for the commands above (the pipeline's export stage)",
        description="Write models/serving/TASK: the trained model's forward pass compiled by jax.export and its "
                    "weights, which classify, generate, tag, duplicates and similar run without importing trax "
                    "(and with it TensorFlow), so that they answer in about a second.")
    _task_argument(export_parser)
    export_parser.set_defaults(handler=_run_export)

    package_parser = commands.add_parser(
        "package", help="write the task's model package, which works outside the repository (the package stage)",
        description="Write packages/TASK: the exported model, its vocabulary or index, its params, this commit's "
                    "headline metrics, its provenance, a model card (README.md) and a manifest of sha256s. Load it "
                    "from anywhere with seqnlp.load(FOLDER), or give the commands --package FOLDER.")
    _task_argument(package_parser)
    package_parser.set_defaults(handler=_run_package)

    samples_parser = commands.add_parser(
        "samples", help="write the task's generated samples (the pipeline's generate stage)",
        description="Write samples/TASK.txt: texts generated at the prefixes, temperatures and seed of the "
                    "task's `generate` params.")
    samples_parser.add_argument("task", help="a task whose module writes samples (shakespeare)")
    samples_parser.set_defaults(handler=_run_samples)

    regenerate_parser = commands.add_parser(
        "regenerate", help="rerun the pipeline in a clean clone and check the committed metrics",
        description="Clone REV into a clean workspace that shares this checkout's DVC cache, run `dvc repro` "
                    "there (stages whose code, params and data are unchanged come back from the run-cache; "
                    "--from-scratch reruns them all) and compare the metrics it makes with the committed "
                    "metrics/*.json. Exits 1 naming each metric that moved further than tolerances.yaml allows.")
    regenerate_parser.add_argument("--rev", default="HEAD", help="the commit to regenerate (default: HEAD)")
    regenerate_parser.add_argument("--from-scratch", action="store_true",
                                   help="rerun every stage (dvc repro --force) instead of reusing the run-cache")
    regenerate_parser.add_argument("--task", action="append", default=[],
                                   help="regenerate and compare only this task's stages (repeatable)")
    regenerate_parser.add_argument("--workdir", type=Path,
                                   help="where to clone (default: a new temporary folder)")
    regenerate_parser.add_argument("--keep", action="store_true", help="keep the clone afterwards")
    regenerate_parser.set_defaults(handler=_run_regenerate)

    report_parser = commands.add_parser(
        "report", help="write a markdown report of the workspace's metrics, params and plots against a revision",
        description="Write REPORT (default report.md): per task, the headline metrics of the workspace beside "
                    "those of BASE, the change, and their anchors (goals, course and peer figures from "
                    "anchors.yaml); every changed metric (dvc metrics diff) and param (dvc params diff); and "
                    "each plot of dvc.yaml with both revisions, rendered to PNG in REPORT's folder.")
    report_parser.add_argument("--base", required=True, help="the revision to compare with (a commit, branch or tag)")
    report_parser.add_argument("--output", type=Path, default=Path("report.md"), metavar="REPORT",
                               help="the markdown file to write (default: report.md)")
    report_parser.set_defaults(handler=_run_report)

    results_parser = commands.add_parser(
        "results", help="rewrite the README's results table from metrics/*.json and anchors.yaml",
        description="Rewrite the block between README's results markers: every headline metric that anchors.yaml "
                    "names, with this checkout's value (metrics/<task>.json, written by the evaluate stage), its "
                    "goals and the course's and peers' figures, and where the data came from. Run it after a "
                    "pipeline run that moves a metric; a test fails while the committed table differs.")
    results_parser.add_argument("--readme", type=Path, default=Path("README.md"), help="the file (default: README.md)")
    results_parser.add_argument("--check", action="store_true",
                                help="write nothing; exit 1 if the table is not what the metrics make")
    results_parser.set_defaults(handler=_run_results)

    plots_parser = commands.add_parser(
        "plots", help="render the workspace's DVC plots as images",
        description="Render each plot of dvc.yaml's plots: with the workspace's data (dvc plots show) to "
                    "DIRECTORY/<title>.svg (or .png), replacing the images there, for reading without a browser "
                    "and for Snakemake's report (the render_plots stage runs it).")
    plots_parser.add_argument("directory", type=Path, help="where to write the images (created if missing)")
    plots_parser.add_argument("--format", choices=("svg", "png"), default="svg", help="image format (default: svg)")
    plots_parser.set_defaults(handler=_run_plots)

    slice_parser = commands.add_parser(
        "slice", help="copy the project with params for a small slice of the data (the .test/ configuration)",
        description="Make DIRECTORY (new or empty) a git repository holding this project's code and config, not "
                    "its results, with params.yaml changed by CONFIG (dotted keys), so that the whole pipeline "
                    "runs there in minutes through `dvc repro` or Snakemake. The end-to-end tests run this slice.")
    slice_parser.add_argument("directory", type=Path, help="where to make the copy")
    slice_parser.add_argument("--config", type=Path, default=Path(".test/config/params.yaml"),
                              help="the params overrides (default: .test/config/params.yaml)")
    slice_parser.set_defaults(handler=_run_slice)

    variant_parser = commands.add_parser(
        "variant", help="print the `dvc exp run` flags of a named variant",
        description="Print the -S flags that turn params.yaml into the named variant (variants/NAME.yaml), "
                    "for example: dvc exp run -n topics-seed $(seqnlp variant topics-seed)")
    variant_parser.add_argument("name", help="a file name under variants/, without .yaml")
    variant_parser.set_defaults(handler=_run_variant)
    return parser


def run_the_checkouts_own_code(argv):
    """Inside a copy of the project (`seqnlp slice`, a clone that shares one venv), run the copy's own
    src/, not the code the venv's editable install points at: DVC hashes the copy's files, so an edit
    there must be what runs."""
    try:
        own = repository_root() / "src" / "seqnlp"
    except UserError:
        return
    if (own / "__init__.py").is_file() and own.resolve() != Path(__file__).resolve().parent:
        paths = [str(own.parent), *filter(None, [os.environ.get("PYTHONPATH")])]
        os.execve(sys.executable, [sys.executable, "-m", "seqnlp", *argv],
                  {**os.environ, "PYTHONPATH": os.pathsep.join(paths)})


def stop_on_sigterm():
    """SIGTERM (`kill`, SLURM's `scancel`, a container that stops) stops a command as Ctrl-C does: nothing
    half-written, checkpoints kept, one line. Returns the list the handler appends the signal to."""
    received = []

    def interrupt(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    return received


def main(argv=None):
    """The ``seqnlp`` command; ``argv`` (in-process callers, such as tests) runs the code already imported."""
    if argv is None:
        run_the_checkouts_own_code(sys.argv[1:])
        terminated = stop_on_sigterm()
        code = run(build_parser().parse_args())
        return 128 + signal.SIGTERM if terminated and code == 130 else code  # as a process the signal ended
    return run(build_parser().parse_args(argv))


def run(args):
    """Run a parsed command; its exit status, with any error on one line."""
    try:
        if not runs_anywhere(args):  # a package works anywhere; everything else in the repository
            enter_repository_root()
        args.handler(args)
    except UserError as error:
        print(f"seqnlp {args.command}: error: {error}", file=sys.stderr)
        return getattr(error, "exit_code", 1)
    except KeyboardInterrupt:
        print(f"seqnlp {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader stopped (`| head`): end quietly, as other Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except OSError as error:  # a full disk, a read-only folder, a missing file: the system's words, one line
        where = error.filename or "a file"
        print(f"seqnlp {args.command}: error: cannot use {where}: {error.strerror or error}", file=sys.stderr)
        return 1
    return 0
