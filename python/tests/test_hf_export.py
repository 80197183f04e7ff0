"""bla-export --format hf: the folder's model gives the C++ model's logits and bla-generate's greedy tokens.

Each case trains a small model with the build's bla-train (a few steps, so the
logits are not flat), exports it with `--format hf --reference-tokens`, which
also writes the C++ model's float32 logits for the reference tokens, and
imports the folder's modeling_bla.py as a package (no transformers needed):
its model must reproduce those logits with torch.ops.bla and with the plain
PyTorch forms, through the parallel forward and token by token, and its greedy
decoding must give bla-generate's tokens. Where transformers imports, the
folder is also loaded the way users do, AutoModelForCausalLM.from_pretrained(
..., trust_remote_code=True), and held to the same numbers. ctest names the
programs' folder in BLA_PROGRAMS."""

import ast
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bla_train import forms, safetensors

SOURCE = Path(__file__).resolve().parents[2]
PACKAGE = SOURCE / "python" / "bla_train"
REFERENCE = [5, 17, 3, 90, 42, 7, 7, 31, 64, 2, 100, 18, 3, 5, 25, 12, 99, 8, 64, 31, 4, 77, 1, 23]  # ids < 128, every vocab
PROMPT = [3, 5, 18, 3, 90, 42]
NEW_TOKENS = 12
TOLERANCE = 1e-5

# (case name, mixer config, extra --set items): every mixer, and the model options short_conv, mlp none and an
# untied head on one of them.
CASES = [(m, m, []) for m in ["attention", "swa", "bla", "gatedfwa", "gla", "gsa", "mamba2"]] + [
    ("bla_conv_untied", "bla", ["model.short_conv=4", "model.mlp=none", "model.tie_embeddings=false"])]
SMALL = ["train.steps=6", "train.batch_size=8", "data.train_examples=64", "data.test_examples=8", "data.seq_len=32",
         "model.layers=2", "train.tensorboard=false", "train.eval_every=0", "train.log_every=100"]


def run(command):
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(map(str, command))} exited {done.returncode}: {done.stderr[-2000:]}"
    return done.stdout


def programs():
    folder = os.environ.get("BLA_PROGRAMS")
    if not folder:
        pytest.skip("BLA_PROGRAMS (the folder of bla-train, bla-export and bla-generate) is not set; ctest sets it")
    return Path(folder)


@pytest.fixture(scope="module", params=CASES, ids=[c[0] for c in CASES])
def exported(request, tmp_path_factory):
    """(case name, export folder, bla-generate's greedy tokens after PROMPT)."""
    name, mixer, extra = request.param
    folder = tmp_path_factory.mktemp(f"hf_{name}")
    train = [programs() / "bla-train", SOURCE / f"configs/mqar_{mixer}.yaml", "--out", folder / "run"]
    for item in SMALL + extra:
        train += ["--set", item]
    run(train)
    checkpoint = sorted((folder / "run" / "checkpoints").glob("*.ckpt"))[-1]
    out = folder / f"export_{name}"
    run([programs() / "bla-export", checkpoint, "--out", out, "--format", "hf",
         "--reference-tokens", " ".join(map(str, REFERENCE))])
    run([programs() / "bla-export", checkpoint, "--out", folder / f"plain_{name}"])  # --format bla, beside it
    generated = run([programs() / "bla-generate", checkpoint, "--prompt", " ".join(map(str, PROMPT)),
                     "--max-new-tokens", NEW_TOKENS, "--temperature", "0"])
    return name, out, [int(t) for t in generated.split()]


def import_export(folder: Path):
    """The folder's modeling_bla as a module of the package named after the folder (what transformers does)."""
    sys.path.insert(0, str(folder.parent))
    try:
        return importlib.import_module(f"{folder.name}.modeling_bla")
    finally:
        sys.path.remove(str(folder.parent))


def reference(folder: Path):
    tensors = safetensors.load_file(folder / "reference_logits.safetensors")
    return tensors["tokens"], tensors["logits"]


def close(actual, expected):
    torch.testing.assert_close(actual.float(), expected, rtol=TOLERANCE, atol=TOLERANCE)


def test_the_folder_holds_the_hugging_face_files(exported):
    name, folder, _ = exported
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "bla_lm"
    assert config["architectures"] == ["BlaForCausalLM"]
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_bla.BlaForCausalLM"
    assert config["auto_map"]["AutoConfig"] == "configuration_bla.BlaConfig"
    assert len(config["layer_mixers"]) == config["layers"] == 2
    for key in ("vocab_size", "d_model", "heads", "mlp", "mlp_ratio", "short_conv", "norm_eps", "tie_embeddings"):
        assert key in config, key
    if name == "bla_conv_untied":
        assert (config["short_conv"], config["mlp"], config["tie_embeddings"]) == (4, "none", False)
    weights = safetensors.load_file(folder / "model.safetensors")
    assert weights and all(n.startswith("model.") for n in weights)
    assert ("model.head.weight" in weights) == (not config["tie_embeddings"])
    # BlaConfig (transformers' or the stand-in) carries the description the model is built from.
    modeling = import_export(folder)
    description = modeling.BlaConfig(**config).description()
    assert description == {key: config[key] for key in description}
    model = modeling.LanguageModel(description)
    assert sorted(f"model.{n}" for n, _ in model.named_parameters()) == sorted(weights)


def relative_imports(path: Path):
    tree = ast.parse(path.read_text())
    return {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1}


def test_the_python_files_are_the_packages_and_import_only_each_other(exported):
    """The embedded copies are today's python/bla_train files; every file modeling_bla.py imports, directly or
    not, is in the folder (src/CMakeLists.txt lists them), and modeling_bla.py imports each itself: from a local
    folder transformers copies only the files the modeling file names."""
    _, folder, _ = exported
    copied = sorted(p.name for p in folder.glob("*.py"))
    for name in copied:
        assert (folder / name).read_text() == (PACKAGE / name).read_text(), f"{name} differs from python/bla_train's"
    needed, todo = set(), ["modeling_bla", "tokenization_bla"]
    while todo:
        module = todo.pop()
        if module not in needed:
            needed.add(module)
            todo += relative_imports(PACKAGE / f"{module}.py")
    assert sorted(f"{m}.py" for m in needed) == copied
    assert relative_imports(PACKAGE / "modeling_bla.py") == needed - {"modeling_bla", "tokenization_bla"}
    assert relative_imports(PACKAGE / "tokenization_bla.py") == set()
    assert relative_imports(PACKAGE / "configuration_bla.py") == set()


@pytest.mark.parametrize("form", ["torch_ops", "naive"])
def test_the_model_gives_the_cpp_logits(exported, form):
    _, folder, _ = exported
    modeling = import_export(folder)
    tokens, expected = reference(folder)
    model = modeling.load_core(folder)
    package_forms = importlib.import_module(f"{folder.name}.forms")
    package_forms.use(form)
    try:
        assert package_forms.name() == form
        with torch.no_grad():
            close(model(tokens), expected)                # the parallel forward
            close(model.prefill(tokens)[0], expected)     # token by token through the decode states
    finally:
        package_forms.use("auto")


def test_greedy_decoding_gives_bla_generates_tokens(exported):
    _, folder, generated = exported
    model = import_export(folder).load_core(folder)
    assert len(generated) == NEW_TOKENS
    assert model.greedy(torch.tensor([PROMPT]), NEW_TOKENS)[0].tolist() == generated


def test_the_cache_stays_bounded_for_bounded_mixers(exported):
    name, folder, _ = exported
    modeling = import_export(folder)
    model = modeling.load_core(folder)
    sizes = []
    state = model.initial_state(1)
    for length in (40, 80):
        with torch.no_grad():
            _, state = model.prefill(torch.randint(0, 100, (1, 40)), state)
        sizes.append(modeling.BlaCache(state, length).numel())
    if name == "attention":
        assert sizes[1] > sizes[0]
    else:
        assert sizes[1] == sizes[0]


def test_a_bla_format_export_builds_the_same_model(exported):
    """bla_train.model.load_export reads --format bla's config.json and names as well as the hf folder."""
    name, folder, _ = exported
    from bla_train import model as bla_model
    tokens, expected = reference(folder)
    with torch.no_grad():
        close(bla_model.load_export(folder.parent / f"plain_{name}")(tokens), expected)
        close(bla_model.load_export(folder, prefix="model.")(tokens), expected)


def test_left_padding_is_refused():
    from bla_train import modeling_bla
    modeling_bla._check_padding(torch.tensor([[1, 1, 1, 0, 0]]))
    with pytest.raises(ValueError, match="left padding"):
        modeling_bla._check_padding(torch.tensor([[0, 1, 1]]))


def test_unknown_op_forms_are_named():
    with pytest.raises(ValueError, match="choose one of auto, torch_ops, naive"):
        forms.use("cuda")

# ------------------------------------------------------------------ with transformers


def test_from_pretrained_gives_the_cpp_logits_and_tokens(exported):
    transformers = pytest.importorskip("transformers")
    _, folder, generated = exported
    model = transformers.AutoModelForCausalLM.from_pretrained(str(folder), trust_remote_code=True).float().eval()
    tokens, expected = reference(folder)
    with torch.no_grad():
        close(model(tokens).logits, expected)
        close(model(tokens, use_cache=True).logits, expected)
        prompt = torch.tensor([PROMPT])
        cached = model.generate(prompt, max_new_tokens=NEW_TOKENS, do_sample=False, use_cache=True)
        uncached = model.generate(prompt, max_new_tokens=NEW_TOKENS, do_sample=False, use_cache=False)
    assert cached[0, len(PROMPT):].tolist() == generated
    assert uncached[0, len(PROMPT):].tolist() == generated

# ------------------------------------------------------------------ a byte-level text model

TEXT_PROMPT = "the cat"


@pytest.fixture(scope="module")
def text_export(tmp_path_factory):
    """A byte-level text model trained a few steps on made-up documents: (export folder, bla-generate's text)."""
    import random
    folder = tmp_path_factory.mktemp("hf_text")
    rng = random.Random(0)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far", "é"]
    documents = []
    for i in range(30):
        documents.append(folder / f"doc{i}.txt")
        documents[-1].write_text(" ".join(rng.choice(words) for _ in range(60)), encoding="utf-8")
    run([programs() / "bla-data", "prepare", "--input", *documents, "--out", folder / "data", "--val-fraction", "0.1"])
    train = [programs() / "bla-train", SOURCE / "configs/text_bla.yaml", "--out", folder / "run"]
    for item in [f"data.path={folder / 'data'}", "data.seq_len=32", "train.batch_size=4", "train.steps=6",
                 "train.eval_every=0", "train.log_every=100", "train.checkpoint_every=6", "train.tensorboard=false"]:
        train += ["--set", item]
    run(train)
    checkpoint = sorted((folder / "run" / "checkpoints").glob("*.ckpt"))[-1]
    out = folder / "export_text"
    ids = " ".join(str(b) for b in TEXT_PROMPT.encode("utf-8"))
    run([programs() / "bla-export", checkpoint, "--out", out, "--format", "hf", "--reference-tokens", ids])
    generated = run([programs() / "bla-generate", checkpoint, "--prompt", TEXT_PROMPT, "--max-new-tokens", NEW_TOKENS,
                     "--temperature", "0"])
    return out, generated.rstrip("\n")


def test_a_text_model_carries_its_byte_tokenizer(text_export):
    folder, generated = text_export
    config = json.loads((folder / "config.json").read_text())
    assert (config["vocab_size"], config["eos_token_id"]) == (257, 256)
    assert config["auto_map"]["AutoTokenizer"] == ["tokenization_bla.BlaByteTokenizer", None]
    tokenizer = json.loads((folder / "tokenizer_config.json").read_text())
    assert tokenizer["tokenizer_class"] == "BlaByteTokenizer" and tokenizer["eos_token"] == "<|end_of_document|>"
    model = import_export(folder).load_core(folder)
    tokens, expected = reference(folder)
    with torch.no_grad():
        close(model(tokens), expected)
    new = model.greedy(tokens, NEW_TOKENS)[0].tolist()
    assert TEXT_PROMPT + bytes(t for t in new if t < 256).decode("utf-8", errors="replace") == generated


def test_from_pretrained_text_model_with_its_tokenizer(text_export):
    transformers = pytest.importorskip("transformers")
    folder, generated = text_export
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), trust_remote_code=True)
    assert tokenizer("the é")["input_ids"] == list("the é".encode("utf-8"))
    assert tokenizer.decode(tokenizer("a , b .")["input_ids"]) == "a , b ."
    assert tokenizer.eos_token_id == 256
    model = transformers.AutoModelForCausalLM.from_pretrained(str(folder), trust_remote_code=True).float().eval()
    prompt = tokenizer(TEXT_PROMPT, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=NEW_TOKENS, do_sample=False)
    new = [t for t in out[0, prompt["input_ids"].shape[1]:].tolist() if t != 256]
    assert TEXT_PROMPT + tokenizer.decode(new) == generated


def test_a_sentencepiece_text_model_carries_its_model_file(tmp_path):
    """The checkpoint's SentencePiece model (stored in it) comes out as tokenizer.model, byte for byte."""
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far"]
    documents = []
    for i in range(30):
        documents.append(tmp_path / f"doc{i}.txt")
        documents[-1].write_text(" ".join(words[(i * 7 + j * 3) % len(words)] for j in range(60)))
    trained = subprocess.run([str(programs() / "bla-data"), "train-tokenizer", "--input", *map(str, documents), "--out",
                              str(tmp_path / "sp"), "--vocab-size", "30"], capture_output=True, text=True)
    if trained.returncode != 0 and ("libsentencepiece" in trained.stderr or "SentencePiece plugin" in trained.stderr):
        pytest.skip(f"this build has no SentencePiece: {trained.stderr.strip()}")
    assert trained.returncode == 0, trained.stderr
    run([programs() / "bla-data", "prepare", "--input", *documents, "--out", tmp_path / "data", "--tokenizer",
         tmp_path / "sp.model", "--val-fraction", "0.1"])
    train = [programs() / "bla-train", SOURCE / "configs/text_bla.yaml", "--out", tmp_path / "run"]
    for item in [f"data.path={tmp_path / 'data'}", "data.seq_len=32", "train.batch_size=4", "train.steps=2",
                 "train.eval_every=0", "train.log_every=100", "train.checkpoint_every=2", "train.tensorboard=false"]:
        train += ["--set", item]
    run(train)
    checkpoint = sorted((tmp_path / "run" / "checkpoints").glob("*.ckpt"))[-1]
    out = tmp_path / "export_sp"
    run([programs() / "bla-export", checkpoint, "--out", out, "--format", "hf", "--reference-tokens", "3 4 5 6"])
    assert (out / "tokenizer.model").read_bytes() == (tmp_path / "sp.model").read_bytes()
    tokenizer = json.loads((out / "tokenizer_config.json").read_text())
    assert tokenizer["tokenizer_class"] == "LlamaTokenizer" and not tokenizer["add_bos_token"]
    config = json.loads((out / "config.json").read_text())
    assert config["vocab_size"] == 30 and 0 <= config["eos_token_id"] < 30
    tokens, expected = reference(out)
    with torch.no_grad():
        close(import_export(out).load_core(out)(tokens), expected)
