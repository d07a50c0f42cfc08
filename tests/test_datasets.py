"""Dataset layouts on generated fixture trees (every layout, in its real file layout): labels, class names, refusals,
identity, subsets, base-to-new splits and `check_data`. No real dataset is needed."""
import json
import os
import pickle
import shutil
import time

import pytest
from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES
from PIL import Image

import ttpt.data.images
from ttpt.data.datasets import check_data, class_mapping, dataset_dir, load_dataset
from ttpt.data.images import UnreadableImage
from ttpt.data.layouts import base_new, IMAGENET_SYNSETS, LAYOUTS, read_classnames, subset, write_fixture

pytestmark = pytest.mark.filterwarnings("ignore:repeated class names") # OpenAI's names repeat "missile" and "sunglasses"


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    "A valid fixture tree per layout, written once; imagenet and imagenet-sketch share one 1000-class tree."
    base, trees = tmp_path_factory.mktemp("fixtures"), {}
    def get(name):
        if name == "imagenet": return get("imagenet-sketch")/"images" # the class folders themselves
        if name not in trees: trees[name] = write_fixture(name, base/name)
        return trees[name]
    return get


def images(root, folders, name="x.png"):
    "A tree with one small random image (no two alike) in each of `folders`."
    for f in folders:
        (root/f).mkdir(parents=True, exist_ok=True)
        Image.frombytes("RGB", (8, 8), os.urandom(8 * 8 * 3)).save(root/f/name)
    return root


def test_labels_without_reading_the_files(tree):
    ds = load_dataset("imagenet-a", tree("imagenet-a"))
    assert len(ds) > 1, len(ds)
    assert [ds.label(i) for i in range(len(ds))] == [ds[i][1] for i in range(len(ds))]


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_every_layout_reads_and_checks_its_fixture(tree, name):
    "Each layout reads its real file layout: protocol, every class, labels in range, identity; the check passes."
    layout = LAYOUTS[name]
    ds = load_dataset(name, tree(name))
    assert len(ds) == len(ds.classes) == (layout.n_classes or 3)
    image, label = ds[0]
    assert image.mode == "RGB" and isinstance(label, int)
    assert sorted(set(ds.labels)) == list(range(len(ds.classes)))
    assert ds.name == (tree(name).name if name == "folder" else name)
    assert set(ds.identity) == {"layout", "root", "split", "subsample", "subset", "n_classes", "classes_sha256", "n_images", "files_sha256"}
    assert json.loads(json.dumps(ds.identity)) == ds.identity
    report = check_data(tree(name), name, progress=False)
    assert report.counts == [1] * len(ds.classes)
    assert all("released" in note for note in report.notes), report.notes # the fixture is smaller than the release, nothing else
    assert f"{len(ds.classes)} classes" in str(report)


def test_imagenet_labels_and_names_follow_timm_and_openai(tree):
    ds = load_dataset("imagenet", tree("imagenet"))
    assert ds.classes == list(IMAGENET_CLASSNAMES)
    for i, f in enumerate(ds.files): assert IMAGENET_SYNSETS[ds.labels[i]] == f.split("/")[0]
    assert ds.labels[ds.files.index(next(f for f in ds.files if f.startswith("n01440764/")))] == 0 # tench
    assert load_dataset("imagenet-sketch", tree("imagenet-sketch")).classes == list(IMAGENET_CLASSNAMES)


@pytest.mark.parametrize("name,first_index,first_wnid", [("imagenet-a", 6, "n01498041"), ("imagenet-r", 1, "n01443537")])
def test_imagenet_a_r_use_timm_subsets_in_order(tree, name, first_index, first_wnid):
    ds = load_dataset(name, tree(name))
    assert ds.classes[0] == IMAGENET_CLASSNAMES[first_index]
    assert ds.files[0].startswith(first_wnid + "/") and ds.labels[0] == 0
    synsets = [f.split("/")[0] for f in ds.files]
    assert synsets == sorted(synsets) and ds.labels == list(range(200))


def test_imagenet_found_in_coop_layout(tmp_path):
    "ImageNet's class folders are found in imagenet/images/val (CoOp's layout): the refusal is about classes, not the folder."
    images(tmp_path/"images"/"val", ["n01440764"])
    with pytest.raises(ValueError, match=r"images/val lacks 999 of imagenet's 1000"): load_dataset("imagenet", tmp_path)


def test_unknown_wordnet_ids_are_refused(tmp_path):
    images(tmp_path, ["n99999991", "n99999992"])
    with pytest.raises(ValueError, match="cannot label.*ImageNet has no such WordNet ids"): load_dataset("imagenet-a", tmp_path)
    images(tmp_path/"cats", ["tabby", "siamese"])
    with pytest.raises(ValueError, match="no WordNet-id"): load_dataset("imagenet-r", tmp_path/"cats")


def test_wordnet_tree_of_another_layout_is_refused_with_a_hint(tree):
    a_classes = load_dataset("imagenet-a", tree("imagenet-a")).root
    with pytest.raises(ValueError, match="not among imagenet-r's 200 classes; they are exactly the classes of imagenet-a"):
        load_dataset("imagenet-r", a_classes)
    with pytest.raises(ValueError, match="lacks 800 of imagenet's 1000 class folders.*exactly the classes of imagenet-a"):
        load_dataset("imagenet", a_classes)


def test_imagenet_v2_folders_are_label_indices(tree):
    ds = load_dataset("imagenet-v2", tree("imagenet-v2"))
    for i, f in enumerate(ds.files): assert ds.labels[i] == int(f.split("/")[0]) # folder "10" is label 10, not 2
    assert ds.classes == list(IMAGENET_CLASSNAMES)


@pytest.mark.parametrize("folders,message", [
    ([f"{k:03d}" for k in range(12)], "zero-padded"), # renamed to zero-padded lexicographic positions 000, 001 (was 1), 002 (was 10), …
    ([str(k) for k in range(995, 1001)], r"\['1000'\]"), # a 1-based numbering ends in 1000
    ([str(k) for k in range(12)] + ["n01440764"], "n01440764"), # a class folder that is no label index
    ([str(k) for k in range(12)], "lacks 988 of ImageNet-V2's 1000 folders"), # an incomplete copy
])
def test_imagenet_v2_trees_with_a_wrong_mapping_are_refused(tmp_path, folders, message):
    with pytest.raises(ValueError, match=message): check_data(images(tmp_path, folders), "imagenet-v2", progress=False)


def test_imagenet_v2_lexicographically_renamed_full_tree_is_refused(tree, tmp_path):
    "All 1000 folders renamed to their zero-padded lexicographic position (0 → 000, 1 → 001, 10 → 002, …)."
    v2 = load_dataset("imagenet-v2", tree("imagenet-v2")).root
    renamed = [f"{position:03d}" for position, _ in enumerate(sorted(str(k) for k in range(1000)))]
    with pytest.raises(ValueError, match="are not .*renamed, zero-padded or 1-based"): load_dataset("imagenet-v2", images(tmp_path, renamed))
    with pytest.raises(ValueError, match="ImageNet-V2's trap"): load_dataset("folder", v2) # and the plain folder layout refuses 0 … 999


def test_folder_names_and_order(tree):
    ds = load_dataset("folder", tree("folder"))
    assert ds.classes == ["golden retriever", "tabby cat", "traffic light"] and ds.labels == [0, 1, 2]


def test_folder_integer_names_need_class_names(tmp_path):
    root = images(tmp_path/"data", [str(k) for k in range(12)])
    with pytest.raises(ValueError, match=r"integer-named class folders.*0, 1, 10, 11, 2.*one per line"): load_dataset("folder", root)
    (tmp_path/"names.txt").write_text("".join(f"name {k}\n" for k in range(12)))
    ds = load_dataset("folder", root, classnames=tmp_path/"names.txt")
    assert ds.labels[ds.files.index("10/x.png")] == 10 and ds.classes[10] == "name 10"
    mapping = {str(k): f"mapped {k}" for k in reversed(range(12))} # label order = the mapping's order
    (tmp_path/"names.json").write_text(json.dumps(mapping))
    ds = load_dataset("folder", root, classnames=str(tmp_path/"names.json"))
    assert ds.classes[0] == "mapped 11" and ds.labels[ds.files.index("11/x.png")] == 0
    with pytest.raises(ValueError, match="not label indices 0 … 9"): load_dataset("folder", root, classnames=[f"c{k}" for k in range(10)])
    with pytest.raises(ValueError, match="not in the class-name mapping"): load_dataset("folder", root, classnames={"0": "zero"})
    images(root, ["cats"])
    with pytest.raises(ValueError, match="mixes integer-named and other"): load_dataset("folder", root, classnames=tmp_path/"names.txt")


def test_folder_refusals(tmp_path):
    with pytest.raises(ValueError, match="does not exist"): load_dataset("folder", tmp_path/"nowhere")
    (tmp_path/"empty").mkdir()
    with pytest.raises(ValueError, match="no class sub-folders"): load_dataset("folder", tmp_path/"empty")
    with pytest.raises(ValueError, match="no 'train' split"): load_dataset("folder", images(tmp_path/"x", ["cat"]), split="train")


def test_classnames_replace_default_names(tree, tmp_path):
    names = [f"flower {k}" for k in range(102)]
    assert load_dataset("flowers102", tree("flowers102"), classnames=names).classes == names
    (tmp_path/"coop_classnames.txt").write_text("".join(f"{w} my {w}\n" for w in IMAGENET_SYNSETS)) # CoOp's classnames.txt format
    assert load_dataset("imagenet-a", tree("imagenet-a"), classnames=tmp_path/"coop_classnames.txt").classes[0] == "my n01498041"
    with pytest.raises(ValueError, match="3 class names given for flowers102's 102 classes"): load_dataset("flowers102", tree("flowers102"), classnames=["a", "b", "c"])
    assert read_classnames(["a", "b"]) == ["a", "b"]


def copy_tree(tree, name, tmp_path):
    return shutil.copytree(tree(name), tmp_path/name)


def test_missing_split_file_is_named_with_its_place(tree, tmp_path):
    root = copy_tree(tree, "eurosat", tmp_path)
    (root/"split_zhou_EuroSAT.json").unlink()
    with pytest.raises(ValueError) as error: check_data(root, "eurosat", progress=False)
    assert f"missing split file {root.resolve()/'split_zhou_EuroSAT.json'}" in str(error.value) and "DATASETS.md" in str(error.value)


@pytest.mark.parametrize("corrupt,message", [
    (lambda split: ["not", "a", "split"], "is not a CoOp split file"),
    (lambda split: {**split, "test": split["test"] + [["x.jpg", 3]]}, r"is not \[image path, label, class name\]"),
    (lambda split: {**split, "test": split["test"] + [[split["test"][0][0], 0, "Other Name"]]}, "label 0 is called both"),
    (lambda split: {s: [e for e in entries if e[1] != 4] for s, entries in split.items()}, r"labels \[4\] of 0 … 9 never occur"),
    (lambda split: {s: [e for e in entries if e[1] != 9] for s, entries in split.items()}, "has 9 classes, but eurosat has 10"),
    (lambda split: {**split, "test": split["test"] + [["Nowhere/gone.jpg", 0, split["test"][0][2]]]}, "e.g. Nowhere/gone.jpg"),
])
def test_mismatched_split_files_are_refused(tree, tmp_path, corrupt, message):
    root = copy_tree(tree, "eurosat", tmp_path)
    split_file = root/"split_zhou_EuroSAT.json"
    split_file.write_text(json.dumps(corrupt(json.loads(split_file.read_text()))))
    with pytest.raises(ValueError, match=message): load_dataset("eurosat", root)


def test_split_file_of_another_set_is_refused(tree, tmp_path):
    root = copy_tree(tree, "eurosat", tmp_path)
    shutil.copy(tree("dtd")/"split_zhou_DescribableTextures.json", root/"split_zhou_EuroSAT.json")
    with pytest.raises(ValueError, match="has 47 classes, but eurosat has 10: is it eurosat's file"): load_dataset("eurosat", root)


def test_coop_splits_and_names(tree):
    root = tree("ucf101")
    test, train = load_dataset("ucf101", root), load_dataset("ucf101", root, split="train")
    assert test.classes == train.classes and test.classes[0] == "class 000" # CoOp's "_" read as a space
    assert set(test.files).isdisjoint(train.files) and test.identity != train.identity
    assert test.identity["split"] == "test" and load_dataset("ucf101", root, split="val").identity["split"] == "val"
    with pytest.raises(ValueError, match="has no 'holdout' split"): load_dataset("ucf101", root, split="holdout")
    cars = load_dataset("stanford-cars", tree("stanford-cars")) # paths start at the dataset folder itself
    assert cars.files[0].startswith("cars_test/") and cars.root == tree("stanford-cars").resolve()


def test_fgvc_aircraft_reads_the_release_lists(tree, tmp_path):
    ds = load_dataset("fgvc-aircraft", tree("fgvc-aircraft"))
    assert ds.root.name == "images" and ds.classes[:2] == ["class 000", "class 001"]
    root = copy_tree(tree, "fgvc-aircraft", tmp_path)
    with open(root/"images_variant_test.txt", "a") as f: f.write("1234567 Spitfire\n")
    with pytest.raises(ValueError, match=r"images_variant_test.txt, line 101: variant 'Spitfire' is not in variants.txt"): load_dataset("fgvc-aircraft", root)
    (root/"variants.txt").unlink()
    with pytest.raises(ValueError, match=f"missing {root.resolve()/'variants.txt'}"): load_dataset("fgvc-aircraft", root)


def test_unreadable_images_name_the_file(tree, tmp_path):
    root = copy_tree(tree, "folder", tmp_path)
    victim = next((root/"tabby_cat").iterdir())
    victim.write_bytes(victim.read_bytes()[:len(victim.read_bytes()) // 2]) # a truncated PNG
    ds = load_dataset("folder", root) # listing needs no decoding
    with pytest.raises(UnreadableImage) as error: ds[ds.files.index(f"tabby_cat/{victim.name}")]
    assert error.value.path == victim.resolve() and victim.name in str(error.value) and "truncated" in str(error.value)
    assert isinstance(error.value, ValueError)
    again = pickle.loads(pickle.dumps(error.value)) # crosses DataLoader worker processes intact
    assert again.path == error.value.path and str(again) == str(error.value)
    (root/"golden_retriever"/"notes.png").write_text("not an image")
    with pytest.raises(ValueError, match=r"2 of 4 images cannot be read: .*notes.png.*tabby_cat"): check_data(root, progress=False)


def test_identity_tracks_the_files(tree, tmp_path):
    root = copy_tree(tree, "folder", tmp_path)
    first = load_dataset("folder", root).identity
    assert load_dataset("folder", root).identity == first and first["root"] == str(root.resolve())
    assert load_dataset("folder", copy_tree(tree, "folder", tmp_path/"other")).identity["root"] != first["root"]
    image = next((root/"tabby_cat").iterdir())
    Image.new("RGB", (16, 16)).save(image) # same name, other size
    resized = load_dataset("folder", root).identity
    assert resized["files_sha256"] != first["files_sha256"] and resized["n_images"] == first["n_images"]
    images(root, ["tabby_cat"], name="extra.png")
    assert load_dataset("folder", root).identity["n_images"] == first["n_images"] + 1
    renamed = load_dataset("folder", root, classnames={"golden_retriever": "dog", "tabby_cat": "cat", "traffic_light": "light"}).identity
    assert renamed["classes_sha256"] != resized["classes_sha256"]


def test_subset_is_a_seeded_prefix_recorded_in_the_identity(tree):
    ds = load_dataset("caltech101", tree("caltech101"))
    ten, twenty = subset(ds, 10, seed=1), subset(ds, 20, seed=1)
    assert ten.files == twenty.files[:10] and len(ten) == 10
    assert subset(ds, 10, seed=2).files != ten.files
    assert ten.identity["subset"] == {"n": 10, "seed": 1} and ten.identity["n_images"] == 10
    assert ten.identity != subset(ds, 10, seed=2).identity
    assert subset(ds, 10_000).identity["subset"] == {"n": 100, "seed": 0}
    assert [ten[i][1] for i in range(3)] == [ds.labels[ds.files.index(f)] for f in ten.files[:3]]
    assert load_dataset("caltech101", tree("caltech101"), n=10, seed=1).files == ten.files
    with pytest.raises(ValueError, match="n must be ≥ 1"): subset(ds, 0)


@pytest.mark.parametrize("name,n_base", [("folder", 2), ("eurosat", 5), ("sun397", 199)])
def test_base_new_halves_follow_coop(tree, name, n_base):
    "Base is the first ⌈K/2⌉ classes, new the rest; each half relabelled from 0."
    ds = load_dataset(name, tree(name))
    base, new = load_dataset(name, tree(name), subsample="base"), load_dataset(name, tree(name), subsample="new")
    assert base.classes == ds.classes[:n_base] and new.classes == ds.classes[n_base:]
    assert sorted(set(base.labels)) == list(range(n_base)) and sorted(set(new.labels)) == list(range(len(ds.classes) - n_base))
    assert new.files[0] == ds.files[ds.labels.index(n_base)] and new.labels[0] == 0
    assert (base.name, new.identity["subsample"]) == (f"{ds.name}-base", "new")
    with pytest.raises(ValueError, match="subsample must be"): load_dataset(name, tree(name), subsample="novel")
    with pytest.raises(ValueError, match="half must be"): base_new(ds, "all")


def test_dataset_dir_accepts_ttpt_and_coop_names(tmp_path):
    (tmp_path/"imagenet-adversarial").mkdir(); (tmp_path/"caltech101").mkdir()
    assert dataset_dir(tmp_path, "imagenet-a") == tmp_path/"imagenet-adversarial"
    assert dataset_dir(tmp_path, "caltech101") == tmp_path/"caltech101"
    with pytest.raises(ValueError, match="expected .*food101 or .*food-101"): dataset_dir(tmp_path, "food101")
    with pytest.raises(ValueError, match="did you mean"): dataset_dir(tmp_path, "imagenet_a")


def test_check_data_notes_what_is_suspicious(tree, tmp_path):
    root = copy_tree(tree, "folder", tmp_path)
    images(root, ["golden_retriever"]) # 2 images, against 30 and 40
    for k in range(28): images(root, ["tabby_cat"], name=f"more_{k}.png")
    for k in range(39): images(root, ["traffic_light"], name=f"more_{k}.png")
    shutil.copy(root/"traffic_light"/"more_0.png", root/"tabby_cat"/"copy.png") # same bytes, other class
    (root/"empty_class").mkdir()
    (root/"golden_retriever"/"README.txt").write_text("not an image")
    report = check_data(root, progress=False)
    text = str(report)
    for part in ("1 of 4 classes have no images, e.g. ['empty class']", "very unbalanced", "golden retriever (2)",
                 "identical files: 1 groups, 1 of them across classes", "1 files with extensions eval does not read (.txt 1)"):
        assert part in text, (part, text)
    assert report.counts == [0, 2, 30, 40]


def test_every_layout_knows_its_release():
    assert [n for n, l in LAYOUTS.items() if l.n_images.get("test") is None] == ["folder"]
    coop = [n for n, l in LAYOUTS.items() if l.reader in ("coop", "aircraft")]
    assert len(coop) == 10 and all(set(LAYOUTS[n].n_images) == {"train", "val", "test"} for n in coop)


def test_identity_is_the_content_of_the_files(tree, tmp_path, monkeypatch):
    "An image repainted at the same byte size changes the identity; a rerun reads the digests from the cache, not the files."
    root = copy_tree(tree, "folder", tmp_path)
    image = next((root/"tabby_cat").iterdir())
    Image.new("RGB", (8, 8), (255, 0, 0)).save(image.with_suffix(".bmp")) # BMP: the byte size depends on the size only
    image.unlink()
    first = load_dataset("folder", root).identity
    Image.new("RGB", (8, 8), (0, 0, 255)).save(image.with_suffix(".bmp")) # repainted, same byte size
    now = time.time_ns
    monkeypatch.setattr(ttpt.data.images.time, "time_ns", lambda: now() + 10 * 10**9) # 10 s on: every file has settled and is cached (one just written is not)
    repainted = load_dataset("folder", root)
    assert repainted.identity["files_sha256"] != first["files_sha256"], (repainted.identity, first)
    monkeypatch.setattr(ttpt.data.images, "_hash_file", lambda path: pytest.fail(f"{path} was hashed again"))
    assert load_dataset("folder", root).identity == repainted.identity # warm: every digest from the cache
    assert subset(repainted, 2).digests == [repainted.digests[repainted.files.index(f)] for f in subset(repainted, 2).files]


def test_class_mapping_is_shown_and_checked(tree, tmp_path):
    "check-data shows which folder gets which name, and flags a name unlike its folder; a list of names for named folders is refused."
    root = tree("folder")
    text = str(check_data(root, progress=False))
    assert "golden_retriever → golden retriever" in text and "traffic_light → traffic light" in text and "look suspicious" not in text, text
    with pytest.raises(ValueError, match="say which folder each name is for"): load_dataset("folder", root, classnames=["cat", "dog", "light"])
    (tmp_path/"names.txt").write_text("tabby_cat\tcat\ngolden_retriever\tdog\ntraffic_light\ttraffic light\n") # keyed, any order
    ds = load_dataset("folder", root, classnames=tmp_path/"names.txt")
    assert [ds.classes[y] for y, f in zip(ds.labels, ds.files) if f.startswith("tabby_cat/")] == ["cat"], (ds.classes, ds.files)
    swapped = {"golden_retriever": "traffic light", "tabby_cat": "tabby cat", "traffic_light": "golden retriever"}
    shown = class_mapping(load_dataset("folder", root, classnames=swapped))
    assert "2 look suspicious" in shown and "golden_retriever → traffic light   <- name unlike its folder" in shown, shown


def test_repeated_class_names_are_refused_or_merged(tmp_path):
    root = images(tmp_path/"data", ["cat", "kitten", "dog"])
    names = {"cat": "cat", "kitten": "cat", "dog": "dog"}
    with pytest.raises(ValueError, match=r"given to several classes, e.g. 'cat' to \['cat', 'kitten'\].*--merge-duplicate-classes"):
        load_dataset("folder", root, classnames=names)
    merged = load_dataset("folder", root, classnames=names, merge_duplicates=True)
    assert (merged.classes, merged.folders) == (["cat", "dog"], ["cat+kitten", "dog"]), (merged.classes, merged.folders)
    assert [merged.classes[y] for y in merged.labels] == ["cat", "cat", "dog"], merged.labels # in the mapping's order: cat, kitten, dog
    assert "merged" in class_mapping(merged)
    with pytest.raises(ValueError, match="given to several classes"): check_data(images(tmp_path/"twice", ["tabby_cat", "tabby cat"]), progress=False)


def test_classnames_file_not_utf8_is_named(tmp_path):
    (tmp_path/"names.txt").write_bytes(b"caf\xe9\n")
    with pytest.raises(ValueError, match=r"class-name file .*names.txt is not UTF-8 text"): read_classnames(tmp_path/"names.txt")


def test_symlink_loop_is_followed_once(tmp_path):
    "A link back to its own class folder is read once, the same way by a run and by check-data."
    root = images(tmp_path/"data", ["cat", "dog"])
    images(root, ["cat", "dog"], name="y.png")
    os.symlink(root/"cat", root/"cat"/"loop")
    assert len(load_dataset("folder", root)) == 4
    report = check_data(root, progress=False)
    assert len(report.dataset) == 4 and "links to folders already read" in str(report), str(report)
