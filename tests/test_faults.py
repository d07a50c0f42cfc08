"""Bad inputs and faults (issue 36): each is refused in one line or handled correctly, never a silent wrong result, and no
process or torn file outlives its run. Each test names the class of fault it stands for."""
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ttpt.data.images
from ttpt.data.datasets import check_data, load_dataset
from ttpt.harness.evaluate import evaluate, merge_shards
from ttpt.harness.protocol import Capabilities, Kind, Method
from ttpt.data.images import UnreadableImage, file_digests, read_image
from ttpt.harness.results import MEASURED_COLUMNS, _logged_runs, _record_run, read_results, results_path

TTPT = Path(sys.executable).parent / "ttpt"


def run_ttpt(*args, env=None, timeout=600):
    return subprocess.run([str(TTPT), *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


def one_line_error(result, *parts):
    "The command failed with one `ttpt: error:` line holding every part."
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr and lines and lines[-1].startswith("ttpt: error: "), result.stderr[-2000:]
    assert all(p in lines[-1] for p in parts), (parts, lines[-1])
    return lines[-1]


def images(root, folders, name="x.png", size=(8, 8)):
    "One small random RGB image (no two alike) in each of `folders` under `root`."
    for f in folders:
        (root/f).mkdir(parents=True, exist_ok=True)
        Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(root/f/name)
    return root


# 1. Identity that cannot be fooled cheaply

@pytest.fixture
def cache_settles_at_once(monkeypatch, tmp_path):
    "A fresh digest cache, and a clock 10 s ahead, so files just written are cached (as files written long ago are)."
    monkeypatch.setenv("TTPT_CACHE", str(tmp_path/"cache"))
    now = time.time_ns
    monkeypatch.setattr(ttpt.data.images.time, "time_ns", lambda: now() + 10 * 10**9)


def test_a_rewrite_in_place_keeping_size_and_mtime_is_noticed(tmp_path, cache_settles_at_once):
    "Repainted at the same byte size with the old modification time restored (`touch -r`, unpacking an archive): hashed again."
    root = images(tmp_path/"data", ["cat", "dog"], name="a.bmp")
    path = root/"cat"/"a.bmp"
    before = file_digests(root, ["cat/a.bmp"])[0]
    stat = path.stat()
    Image.new("RGB", (8, 8), (0, 0, 255)).save(path, "BMP") # same byte size: BMP's depends on the size only
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    assert file_digests(root, ["cat/a.bmp"])[0] != before


def test_files_swapped_between_folders_are_noticed(tmp_path, cache_settles_at_once):
    "Two files of the same size and timestamp swapped between class folders: each path's digest follows its new content."
    root = images(tmp_path/"data", ["cat", "dog"], name="a.bmp")
    files = ["cat/a.bmp", "dog/a.bmp"]
    stamp = time.time_ns() - 100 * 10**9
    for f in files: os.utime(root/f, ns=(stamp, stamp))
    before = file_digests(root, files)
    os.rename(root/"cat/a.bmp", root/"swap.bmp"); os.rename(root/"dog/a.bmp", root/"cat/a.bmp"); os.rename(root/"swap.bmp", root/"dog/a.bmp")
    assert file_digests(root, files) == before[::-1]


def test_changed_shipped_weights_are_refused(tmp_path, monkeypatch):
    "Shipped weights changed at the same size are refused in one line, not run at 0% accuracy."
    from ttpt.core.models import SHIPPED_WEIGHTS, data_dir, load_clip
    rel = next(iter(SHIPPED_WEIGHTS.values()))
    copy = tmp_path/rel
    copy.parent.mkdir(parents=True)
    data = bytearray((data_dir()/rel).read_bytes())
    data[-100:] = bytes(100) # the last weights' bytes zeroed: same size, same header
    copy.write_bytes(bytes(data))
    monkeypatch.setenv("TTPT_DATA", str(tmp_path))
    with pytest.raises(ValueError, match="sha256 .* differs from the recorded"): load_clip()
    one_line_error(run_ttpt("eval", "--method", "zeroshot", "--dataset", "photo", "--images", "2", "--out", str(tmp_path/"out"),
                            env={"TTPT_DATA": str(tmp_path)}), "shipped weights")


def test_a_users_checkpoint_keeps_its_own_digest(tmp_path, clip):
    "A checkpoint of the user's own is not held to the shipped digest: its results record the digest of its weights."
    from ttpt.core.models import load_clip, weights_digest, write_state_dict
    model = load_clip().model
    with torch.no_grad(): model.logit_scale.add_(0.5)
    write_state_dict(model, tmp_path/"mine.safetensors")
    mine = load_clip(checkpoint=tmp_path/"mine.safetensors")
    assert mine.identity["weights_sha256"] == weights_digest(model) != clip.identity["weights_sha256"]


# 2. Images read as they are

def test_sixteen_bit_greyscale_keeps_its_levels(tmp_path):
    "A 0–65535 gradient in a 16-bit PNG reads as 256 grey levels, value/257, not white or posterised."
    gradient = (np.arange(64 * 1024) % 65536).astype(np.uint16).reshape(64, 1024) # (H, W)
    Image.fromarray(gradient).save(tmp_path/"g.png")
    assert Image.open(tmp_path/"g.png").mode.startswith("I")
    rgb = np.asarray(read_image(tmp_path/"g.png")) # (H, W, 3)
    assert (rgb[..., 0] == rgb[..., 2]).all()
    np.testing.assert_array_equal(rgb[..., 0], np.round(gradient / 257).astype(np.uint8))
    assert len(np.unique(rgb)) == 256


def test_modes_that_cannot_be_read_right_are_refused_in_one_line(tmp_path):
    "A floating-point image has no known range: refused, naming the file and its mode."
    Image.fromarray(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)).save(tmp_path/"f.tif")
    with pytest.raises(UnreadableImage, match=r"f\.tif.*mode F"): read_image(tmp_path/"f.tif")


def test_check_data_reports_modes_sizes_and_anything_unusual(tmp_path):
    root = images(tmp_path/"data", ["cat", "dog"])
    images(root, ["cat"], name="big.png", size=(32, 16))
    Image.new("L", (8, 8), 7).save(root/"dog"/"flat.png") # all one value
    Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).save(root/"dog"/"deep.png")
    Image.new("RGB", (8, 8)).save(root/"cat"/"skipped.gif") # an image eval does not read
    text = str(check_data(root, progress=False))
    for part in ("modes: RGB 3, I;16 1, L 1", "sizes (w×h): 8×8 to 32×16", "1 images are all one value", "dog/flat.png",
                 "1 files with extensions eval does not read (.gif 1)", "cat/skipped.gif"):
        assert part in text, (part, text)


# 3. Folder walks that cannot double-count

@pytest.mark.parametrize("link, target", [("cat/up", ".."), ("cat/dogs", "../dog"), ("cat/out", "OUTSIDE"), ("cat/deep/up", "../..")])
def test_links_out_of_their_class_folder_are_refused(tmp_path, link, target):
    "A link to an ancestor, to another class, or out of the dataset would count images under the wrong class: refused, naming it."
    root = images(tmp_path/"data", ["cat", "dog"])
    (root/"cat"/"deep").mkdir()
    outside = images(tmp_path/"elsewhere", ["x"])
    os.symlink(outside if target == "OUTSIDE" else target, root/link)
    with pytest.raises(ValueError, match=f"{link} is a link to .* outside its class folder"): load_dataset("folder", root)
    one_line_error(run_ttpt("check-data", str(root)), link)


def test_class_folders_that_overlap_are_refused(tmp_path):
    "A class folder that is a link to another class folder (or to the data folder) reads the same images under two labels."
    root = images(tmp_path/"data", ["cat", "dog"])
    os.symlink(root/"dog", root/"puppy")
    with pytest.raises(ValueError, match="puppy and dog are the same folder"): load_dataset("folder", root)
    (root/"puppy").unlink()
    os.symlink(root, root/"all")
    with pytest.raises(ValueError, match="all holds the data folder"): load_dataset("folder", root)


def test_class_folder_links_to_elsewhere_are_read(tmp_path):
    "A dataset assembled from links to class folders stored elsewhere reads each once."
    store = images(tmp_path/"store", ["cat", "dog"])
    root = tmp_path/"data"
    root.mkdir()
    for c in ("cat", "dog"): os.symlink(store/c, root/c)
    assert len(load_dataset("folder", root)) == 2


@pytest.mark.parametrize("key", ["bird", "../cat", "cat/sub"])
def test_map_keys_that_name_no_folder_are_refused(tmp_path, key):
    "A class-name map with a key that is no class folder would add a class no image has (a phantom), or read outside the data."
    root = images(tmp_path/"data", ["cat", "dog"])
    (root/"cat"/"sub").mkdir()
    names = {"cat": "cat", "dog": "dog", key: "bird"}
    with pytest.raises(ValueError, match=f"names no class folder of {root}.*{key}"): load_dataset("folder", root, classnames=names)


def test_a_wordnet_map_may_name_more_imagenet_classes(tmp_path):
    "A map of all 1000 ImageNet ids serves ImageNet-A's 200 classes; a key that is no ImageNet id is refused."
    from ttpt.data.layouts import IMAGENET_SYNSETS, write_fixture
    root = write_fixture("imagenet-a", tmp_path/"a")
    names = {s: f"class {k}" for k, s in enumerate(IMAGENET_SYNSETS)}
    assert len(load_dataset("imagenet-a", root, classnames=names).classes) == 200
    with pytest.raises(ValueError, match="names no class"): load_dataset("imagenet-a", root, classnames={**names, "n99999999": "x"})


# 4. Degenerate datasets said out loud

def test_a_single_class_dataset_is_refused(tmp_path):
    "One class makes every prediction right: 100% that means nothing."
    root = images(tmp_path/"data", ["cat"])
    images(root, ["cat"], name="y.png")
    with pytest.raises(ValueError, match="has 1 class"): evaluate(_Constant(), load_dataset("folder", root), None, progress=False)
    one_line_error(run_ttpt("eval", "--method", "zeroshot", "--dataset", str(root), "--out", str(tmp_path/"out")), "has 1 class")


def test_a_class_with_no_images_is_warned(tmp_path):
    root = images(tmp_path/"data", ["cat", "dog"])
    (root/"bird").mkdir()
    with pytest.warns(UserWarning, match=r"1 of 3 classes have no images: \['bird'\]"): load_dataset("folder", root)


@dataclass
@dataclass
class _Constant(Method):
    "A model-free method predicting class 0."
    capabilities = Capabilities(Kind.IMAGE)
    name = "constant"
    def prepare(self, clip, classnames): self.k = len(classnames)
    def predict(self, image, index): return torch.eye(self.k)[0]


# 5. Every failure one line

def test_a_damaged_digest_cache_is_rebuilt_with_one_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("TTPT_CACHE", str(tmp_path/"cache"))
    (tmp_path/"cache").mkdir()
    (tmp_path/"cache"/"file-digests.sqlite").write_bytes(b"not a database" * 100)
    root = images(tmp_path/"data", ["cat", "dog"])
    with pytest.warns(UserWarning, match="damaged.*rebuilt") as caught: digests = file_digests(root, ["cat/x.png", "dog/x.png"])
    assert len(caught) == 1 and len(digests) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert file_digests(root, ["cat/x.png", "dog/x.png"]) == digests


@pytest.mark.parametrize("option", ["--out", "--source-dir", "TTPT_CACHE"])
def test_a_folder_option_that_is_a_file_is_named(tmp_path, option):
    (tmp_path/"file").write_text("x")
    root = images(tmp_path/"data", ["cat", "dog"])
    args = ["eval", "--method", "zeroshot", "--dataset", str(root), "--out", str(tmp_path/"out")]
    env = {"TTPT_CACHE": str(tmp_path/"file")} if option == "TTPT_CACHE" else {}
    if option != "TTPT_CACHE": args += [option, str(tmp_path/"file")]
    one_line_error(run_ttpt(*args, env=env), f"{option} {tmp_path/'file'} is a file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_folder_is_named(tmp_path):
    (tmp_path/"ro").mkdir(mode=0o555)
    one_line_error(run_ttpt("eval", "--method", "zeroshot", "--dataset", "photo", "--images", "2", "--out", str(tmp_path/"ro"/"out")), "--out", "not writable")


@pytest.mark.parametrize("args, option", [(("--sapt-rho", "inf"), "--sapt-rho"), (("--sapt-rho", "nan"), "--sapt-rho"),
                                          (("--images", "0"), "--images"), (("--views", "0"), "--views"), (("--episodes", "0"), "--episodes"),
                                          (("--workers", "-1"), "--workers"), (("--threads", "0"), "--threads")])
def test_bad_numbers_are_refused_before_any_work_naming_the_option(tmp_path, args, option):
    start = time.perf_counter()
    line = one_line_error(run_ttpt("eval", "--method", "sapt", "--dataset", "photo", *args, "--out", str(tmp_path/"out"),
                                   "--source-dir", str(tmp_path/"source")), option)
    assert " n " not in line and "n_views" not in line, line
    assert time.perf_counter() - start < 60 and not (tmp_path/"out").exists() and not (tmp_path/"source").exists()


def test_a_file_name_that_is_not_utf8_is_skipped_and_named(tmp_path):
    root = images(tmp_path/"data", ["cat", "dog"])
    shutil.copy(root/"cat"/"x.png", os.fsencode(root/"cat") + b"/caf\xe9.png")
    with pytest.warns(UserWarning, match=r"1 files whose names are not UTF-8.*caf\\udce9\.png|caf\\xe9\.png"): ds = load_dataset("folder", root)
    assert len(ds) == 2
    assert "caf" in str(check_data(root, progress=False))


# 6. Processes

def test_jobs_are_capped_by_cores_and_memory(monkeypatch, clip):
    import ttpt.compare
    monkeypatch.setattr(ttpt.compare, "available_cores", lambda: 2)
    with pytest.warns(UserWarning, match="--jobs 100 lowered to 2"): assert ttpt.compare.cap_jobs(100, clip) == 2
    monkeypatch.setattr(ttpt.compare, "_available_memory_mb", lambda: 1500)
    with pytest.warns(UserWarning, match="--jobs 2 lowered to 1.*memory"): assert ttpt.compare.cap_jobs(2, clip) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ttpt.compare.cap_jobs(1, clip) == 1


def _descendants(pid):
    import psutil
    return [p.pid for p in psutil.Process(pid).children(recursive=True)]


def _alive(pids):
    import psutil
    return [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


@pytest.mark.parametrize("kind", ["dataloader", "pool"])
def test_workers_die_with_their_parent(tmp_path, kind):
    "kill -9 of a run leaves no worker behind: DataLoader workers of `evaluate`, and the worker pool of `compare`."
    script = textwrap.dedent(f"""
        import sys, time
        from PIL import Image
        from dataclasses import dataclass
        from ttpt.harness.evaluate import evaluate
        from ttpt.harness.protocol import Capabilities, Kind, Method as Base
        class Slow:
            name, classes = "slow", ["a", "b"]
            def __len__(self): return 8
            def __getitem__(self, i): time.sleep(600); return Image.new("RGB", (8, 8)), 0
        @dataclass
        class Method(Base):
            capabilities = Capabilities(Kind.IMAGE)
            name = "m"
            def prepare(self, clip, classes): pass
            def predict(self, image, index): return [0.5, 0.5]
        if "{kind}" == "dataloader": evaluate(Method(), Slow(), None, workers=2, progress=False)
        else:
            from ttpt.compare import _pool
            pool = _pool(2, time.sleep, (0,))
            [f.result() for f in [pool.submit(time.sleep, 0.1) for _ in range(4)]]
            print("ready", flush=True); time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    if kind == "pool": assert parent.stdout.readline().strip() == "ready" # the workers have started (one killed while starting ends when it has)
    deadline, workers = time.time() + 120, []
    while time.time() < deadline and len(workers) < 2:
        time.sleep(0.5)
        workers = _descendants(parent.pid)
    assert len(workers) >= 2, workers
    time.sleep(2)
    parent.kill()
    parent.wait()
    deadline = time.time() + 30
    while time.time() < deadline and _alive(workers): time.sleep(0.2)
    left = _alive(workers)
    for pid in left: os.kill(pid, signal.SIGKILL)
    assert not left, f"{len(left)} workers outlived their parent"


def test_ctrl_c_is_one_line(tmp_path):
    "Ctrl-C (SIGINT to the whole process group) while DataLoader workers read: one line, no worker's traceback."
    process = subprocess.Popen([str(TTPT), "eval", "--method", "tpt", "--dataset", "photo", "--images", "64", "--views", "16",
                                "--workers", "2", "--out", str(tmp_path)], stderr=subprocess.PIPE, text=True, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)) # as from a terminal: a shell's background job inherits SIGINT ignored
    path = results_path(tmp_path, "tpt", "photo")
    deadline = time.time() + 300
    while time.time() < deadline and not (path.exists() and path.read_text().count("\n") > 2): time.sleep(0.2)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=60)
    lines = [l for l in err.splitlines() if l.strip() and "it/s]" not in l and "s/it]" not in l and "%|" not in l]
    assert process.returncode == 130 and lines == ["ttpt: interrupted; run the same command again to resume"], err[-3000:]


# 7. Run logs and results names

def test_a_torn_run_log_line_loses_nothing_after_it(tmp_path):
    path = tmp_path/"m__d.csv"
    path.with_suffix(".runs.jsonl").write_text('{"images": 3, "seconds": 1.0}\n{"images": 5, "sec') # killed mid-write
    _record_run(path, {"images": 7, "seconds": 2.0})
    with pytest.warns(UserWarning, match="line 2"): runs = _logged_runs(path)
    assert [r["images"] for r in runs] == [3, 7]


def test_results_names_cannot_collide(tmp_path):
    names = ["a b", "a_b", "a/b", "a:b", "a__b"]
    assert len({results_path(tmp_path, "m", n) for n in names}) == len(names)
    assert len({results_path(tmp_path, m, "d") for m in ["x__y", "x", "x_"]}) == 3
    assert results_path(tmp_path, "tpt", "photo").name == "tpt__photo.csv" # plain names as before


def test_another_datasets_results_are_never_to_be_deleted(tmp_path):
    "Two folders of the same name share a results file name: the second run is refused without advice to delete the first's results."
    first, second = images(tmp_path/"one"/"pets", ["cat", "dog"]), images(tmp_path/"two"/"pets", ["cat", "dog"])
    evaluate(_Constant(), load_dataset("folder", first), None, out=tmp_path/"out", progress=False)
    with pytest.raises(ValueError) as refused: evaluate(_Constant(), load_dataset("folder", second), None, out=tmp_path/"out", progress=False)
    message = str(refused.value)
    assert "another dataset" in message and str(first) in message and "delete" not in message, message


def test_compare_refuses_datasets_that_share_a_name(tmp_path, clip):
    "Two folders of one name in one comparison would share every results file: refused before any work."
    from ttpt.compare import compare
    from ttpt.harness.setup import Setup
    first, second = images(tmp_path/"one"/"pets", ["cat", "dog"]), images(tmp_path/"two"/"pets", ["cat", "dog"])
    with pytest.raises(ValueError, match="are all named 'pets'.*separate output folders"):
        compare(Setup(clip, source_dir=tmp_path/"source"), [str(first), str(second)], ["zeroshot"], out=tmp_path/"out", progress=False)
    assert not (tmp_path/"out").exists()


# 8. Results that do not depend on the process count

@dataclass
@dataclass
class _Grouped(Method):
    "An episodic method whose output depends on which images share its batch (as batched float kernels may): exposes any regrouping."
    capabilities = Capabilities(Kind.IMAGE, episodes_at_once=True)
    name = "grouped"
    def prepare(self, clip, classes): self.k = len(classes)
    def predict(self, image, index): return self.predict_episodes([image], [index])[0]
    def predict_episodes(self, images, indices):
        logits = torch.tensor([[float(i % self.k == c) + 0.01 * sum(indices) * (c == 0) for c in range(self.k)] for i in indices], dtype=torch.float64)
        return logits.softmax(-1) # (B, K)


class _Numbers:
    name, classes = "numbers", ["a", "b", "c"]
    def __len__(self): return 23
    def __getitem__(self, i): return Image.new("RGB", (4, 4)), i % 3


def _rows(path): return read_results(path).drop(columns=list(MEASURED_COLUMNS))


@pytest.mark.parametrize("episodes, world", [(2, 2), (3, 2), (5, 3), (4, 4)])
def test_shards_group_the_images_of_a_one_process_run(tmp_path, episodes, world):
    "Shards in blocks of the episode batch: every batch holds the same images whatever the world size, so the merge equals one process."
    evaluate(_Grouped(), _Numbers(), None, out=tmp_path/"one", episodes=episodes, progress=False)
    for rank in range(world): evaluate(_Grouped(), _Numbers(), None, out=tmp_path/"many", episodes=episodes, shard=(rank, world), progress=False)
    merged = merge_shards(_Grouped(), _Numbers(), None, tmp_path/"many", world)
    assert _rows(merged).equals(_rows(results_path(tmp_path/"one", "grouped", "numbers")))


def test_a_run_killed_mid_batch_resumes_with_its_batches(tmp_path):
    "A run killed while writing a batch's rows resumes with the batches an uninterrupted run has: the cut batch is predicted whole again."
    evaluate(_Grouped(), _Numbers(), None, out=tmp_path/"one", episodes=4, progress=False)
    whole = results_path(tmp_path/"one", "grouped", "numbers")
    cut = results_path(tmp_path/"two", "grouped", "numbers")
    cut.parent.mkdir()
    for suffix in (".json", ".runs.jsonl"): shutil.copy(whole.with_suffix(suffix), cut.with_suffix(suffix))
    cut.write_text("".join(whole.read_text().splitlines(keepends=True)[:1 + 7])) # the header and images 0-6: killed inside the batch 4-7
    evaluate(_Grouped(), _Numbers(), None, out=tmp_path/"two", episodes=4, progress=False)
    assert _rows(cut).sort_values("index", ignore_index=True).equals(_rows(whole))
