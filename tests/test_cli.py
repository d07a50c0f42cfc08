"The installed `ttpt` command (the README's main job) runs end to end on a tiny configuration."
import subprocess
import sys
from pathlib import Path

import pytest

from ttpt.harness.results import read_results, results_path

TTPT = Path(sys.executable).parent / "ttpt" # the console script `pip install` puts beside the interpreter


def run_ttpt(*args, cwd=None):
    return subprocess.run([str(TTPT), *args], capture_output=True, text=True, timeout=600, cwd=cwd)


def test_help_lists_commands():
    result = run_ttpt("--help")
    assert result.returncode == 0, result.stderr
    for command in ("zeroshot", "eval", "compare"):
        assert command in result.stdout


def test_compare_prints_tables_and_resumes(tmp_path):
    args = ("compare", "--datasets", "photo", "--methods", "zeroshot", "zero", "--n", "4", "--views", "16", "--out", str(tmp_path), "--jobs", "2")
    first = run_ttpt(*args)
    assert first.returncode == 0, first.stderr
    assert "Top-1 accuracy" in first.stdout and "zero" in first.stdout
    assert "95% CI" in first.stdout and "diff" in first.stdout and "fixed/broken" in first.stdout
    files = sorted(p.name for p in tmp_path.glob("*.csv"))
    assert files == ["zero__photo.csv", "zeroshot__photo.csv"]
    assert len(read_results(tmp_path / "zero__photo.csv")) == 4
    again = run_ttpt(*args)
    assert again.returncode == 0, again.stderr
    assert len(read_results(tmp_path / "zero__photo.csv")) == 4, "a finished run is not recomputed or duplicated"


@pytest.mark.parametrize("args, message", [
    (("eval", "--method", "tpt", "--dataset", "imagenet-z", "--n", "2"), "unknown dataset 'imagenet-z'"),
    (("eval", "--method", "tpt", "--dataset", "/no/such/folder"), "unknown dataset '/no/such/folder'"),
    (("eval", "--method", "tpt", "--dataset", "photo", "--checkpoint", "/no/such/weights.safetensors"), "Checkpoint file not found"),
    (("compare", "--datasets", "photo", "--methods", "zero", "--views", "3", "--jobs", "1"), "--views 3 is too few"),
    (("eval", "--method", "tpt", "--dataset", "photo", "--views", "8"), "keeps its 10% most confident views, so it needs --views 10 or more"),
    (("eval", "--method", "zeroshot", "--dataset", "hard", "--data", "/tmp"), "hard is a miniature-benchmark set, with its own images and class names: --data do not apply"),
    (("eval", "--method", "zeroshot", "--dataset", "hard", "--classnames", "names.txt"), "--classnames do not apply"),
])
def test_expected_errors_are_one_line(args, message):
    result = run_ttpt(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("ttpt: error: ") and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "keep fraction" not in result.stderr, result.stderr # no setting the command line cannot set


def test_an_error_in_a_worker_process_is_one_line():
    "With --jobs 2 the methods are built in worker processes: the error comes back as the same one line, after the progress bar."
    result = run_ttpt("compare", "--datasets", "photo", "--methods", "zero", "--views", "3", "--jobs", "2")
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ttpt: error: ") and "--views 3 is too few" in last, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def test_debug_shows_the_traceback():
    result = run_ttpt("eval", "--method", "tpt", "--dataset", "/no/such/folder", "--debug")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_help_shows_defaults():
    result = run_ttpt("eval", "--help")
    assert "default: 2000 for a" in " ".join(result.stdout.split()) and "(default: results)" in result.stdout, result.stdout
    assert "(default: 1000)" in run_ttpt("compare", "--help").stdout


def test_shipped_model_runs_quietly(tmp_path):
    "No 'initialized randomly' notice when the shipped weights are loaded."
    result = run_ttpt("eval", "--method", "zeroshot", "--dataset", "colours", "--n", "4", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "initialized randomly" not in result.stderr


def test_eval_reuses_the_context_compare_trained(tmp_path):
    "`ttpt eval --method coop` finds the CoOp context `ttpt compare` cached for the same model and settings."
    common = ("--coop-epochs", "1", "--shots", "1", "--source-dir", str(tmp_path / "source"), "--images", "2")
    first = run_ttpt("compare", "--datasets", "colours", "--methods", "zeroshot", "coop", "--out", str(tmp_path / "compare"), "--jobs", "1", *common)
    assert first.returncode == 0, first.stderr
    assert "CoOp" in first.stderr  # trained here (its progress bar)
    cached = sorted((tmp_path / "source").glob("coop-*.safetensors"))
    assert len(cached) == 1
    again = run_ttpt("eval", "--method", "coop", "--dataset", "shapes", "--out", str(tmp_path / "eval"), *common)
    assert again.returncode == 0, again.stderr
    assert "CoOp" not in again.stderr and sorted((tmp_path / "source").glob("coop-*.safetensors")) == cached
    other = run_ttpt("eval", "--method", "coop", "--dataset", "shapes", "--out", str(tmp_path / "random"), "--pretrained", "none", *common)
    assert other.returncode == 0, other.stderr
    assert len(list((tmp_path / "source").glob("coop-*.safetensors"))) == 2  # another model: trained afresh


def _folder_with_a_truncated_image(root):
    from PIL import Image
    for name in ("red circle", "blue square"):
        (root / name).mkdir(parents=True)
        for i in range(3): Image.new("RGB", (64, 64), name.split()[0]).save(root / name / f"{i}.png")
    broken = root / "blue square" / "1.png"
    broken.write_bytes(broken.read_bytes()[:60])  # truncated
    return broken


def test_a_corrupt_image_stops_the_run_naming_it_or_is_skipped_and_counted(tmp_path):
    broken = _folder_with_a_truncated_image(tmp_path / "data")
    stopped = run_ttpt("eval", "--method", "zeroshot", "--dataset", str(tmp_path / "data"), "--out", str(tmp_path / "a"))
    assert stopped.returncode == 2 and str(broken) in stopped.stderr and "Traceback" not in stopped.stderr, stopped.stderr
    skipped = run_ttpt("eval", "--method", "zeroshot", "--dataset", str(tmp_path / "data"), "--out", str(tmp_path / "b"), "--skip-bad-images")
    assert skipped.returncode == 0, skipped.stderr
    assert "1 unreadable images skipped" in skipped.stderr
    header, row = skipped.stdout.strip().splitlines()[:2]
    assert dict(zip(header.split(), row.split()))["skipped"] == "1" and dict(zip(header.split(), row.split()))["n"] == "5"


def test_integer_class_folders_need_names(tmp_path):
    from PIL import Image
    for k in range(3):
        (tmp_path / "v" / str(k)).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "v" / str(k) / "a.png")
    refused = run_ttpt("eval", "--method", "zeroshot", "--dataset", str(tmp_path / "v"), "--out", str(tmp_path / "r"))
    assert refused.returncode == 2 and "integer-named class folders" in refused.stderr and "Pass the class names" in refused.stderr, refused.stderr
    (tmp_path / "names.txt").write_text("red circle\nblue square\ngreen star\n")
    named = run_ttpt("eval", "--method", "zeroshot", "--dataset", str(tmp_path / "v"), "--classnames", str(tmp_path / "names.txt"), "--out", str(tmp_path / "r"))
    assert named.returncode == 0, named.stderr


def test_check_data_refuses_a_wrongly_numbered_v2_tree(tmp_path):
    from ttpt.data.layouts import write_fixture
    tree = write_fixture("imagenet-v2", tmp_path / "imagenetv2")
    assert run_ttpt("check-data", str(tree), "--dataset", "imagenet-v2").returncode == 0
    for folder in sorted(tree.rglob("*")):
        if folder.is_dir() and folder.name == "7": folder.rename(folder.with_name("007"))
    refused = run_ttpt("check-data", str(tree), "--dataset", "imagenet-v2")
    assert refused.returncode == 2 and "label indices 0 … 999" in refused.stderr, refused.stderr


@pytest.mark.parametrize("method,options", [("self-tpt", ("--self-tpt-epochs", "1")), ("tlla", ("--views", "16", "--coop-epochs", "1"))])
def test_each_new_method_runs_from_the_command_line(tmp_path, method, options):
    "Self-TPT and TLLA evaluate from a clean start on the shipped model (tiny schedules, each given only the options it takes); their source stage is cached."
    args = ("eval", "--method", method, "--dataset", "shapes", "--images", "3", "--out", str(tmp_path / "out"),
            "--source-dir", str(tmp_path / "source"), "--shots", "1", *options)
    first = run_ttpt(*args)
    assert first.returncode == 0, first.stderr
    assert len(list((tmp_path / "source").glob("*.safetensors"))) == 1  # its one source-trained artifact
    assert len(read_results(results_path(tmp_path / "out", method, "shapes"))) == 3


def test_source_stage_options_reach_the_setup():
    "Every source-stage option typed lands in the `Setup`'s settings the methods are built from (MetaTPT's included); one not typed is absent."
    from ttpt.cli import _setup, parser
    args = parser().parse_args(["compare", "--shots", "2", "--coop-epochs", "3", "--self-tpt-epochs", "4", "--sapt-rho", "0.05",
                                "--meta-shots", "5", "--meta-epochs", "6"])
    assert _setup(args, clip=None).settings == {"shots": 2, "coop_epochs": 3, "self_tpt_epochs": 4, "sapt_rho": 0.05, "meta_shots": 5, "meta_epochs": 6}


def test_a_folder_named_like_a_benchmark_set_is_ambiguous(tmp_path):
    (tmp_path/"hard"/"cat").mkdir(parents=True)
    result = run_ttpt("eval", "--method", "zeroshot", "--dataset", "hard", "--n", "2", cwd=tmp_path)
    assert result.returncode == 2 and "write ./hard for the folder, or run elsewhere for the benchmark set" in result.stderr, result.stderr


def test_eval_shows_the_class_mapping_and_a_bad_image_in_a_worker_in_one_line(tmp_path):
    from PIL import Image
    for name in ("cat", "dog"):
        (tmp_path/"data"/name).mkdir(parents=True)
        for i in range(3): Image.new("RGB", (8, 8), (60 * i, 0, 0)).save(tmp_path/"data"/name/f"{i}.png")
    (tmp_path/"data"/"dog"/"1.png").write_bytes(b"not a png")
    result = run_ttpt("eval", "--method", "zeroshot", "--dataset", str(tmp_path/"data"), "--workers", "2", "--out", str(tmp_path/"out"))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and "cat → cat" in result.stderr and "dog → dog" in result.stderr, result.stderr
    assert lines[-1].startswith(f"ttpt: error: cannot read image {tmp_path.resolve()/'data'/'dog'/'1.png'}: "), result.stderr
    assert "Traceback" not in result.stderr and "DataLoader worker" not in result.stderr, result.stderr
