"""bla_train.layers: a mixer's weights from bla-export load into the Python layer by their
C++ names (strict), and the BLA layer's decode steps equal its forward.

The export tests train one step with the build's bla-train and export it with
bla-export; ctest names their folder in BLA_PROGRAMS."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from bla_train import layers, safetensors

MIXERS = ["attention", "swa", "bla", "gatedfwa", "gla", "gsa", "mamba2"]
SOURCE = Path(__file__).resolve().parents[2]


def run(command):
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}: {done.stderr[-2000:]}"


def export_one_step(mixer, folder):
    programs = os.environ.get("BLA_PROGRAMS")
    if not programs:
        pytest.skip("BLA_PROGRAMS (the folder of bla-train and bla-export) is not set; ctest sets it")
    small = ["train.steps=1", "train.batch_size=8", "data.train_examples=64", "data.test_examples=8",
             "data.seq_len=32", "model.layers=2", "train.tensorboard=false"]
    train = [f"{programs}/bla-train", str(SOURCE / f"configs/mqar_{mixer}.yaml"), "--out", str(folder / "run")]
    for item in small:
        train += ["--set", item]
    run(train)
    checkpoint = next((folder / "run" / "checkpoints").glob("*.ckpt"))
    run([f"{programs}/bla-export", str(checkpoint), "--out", str(folder / "export")])
    config = json.loads((folder / "export" / "config.json").read_text())
    return config, safetensors.load_file(folder / "export" / "model.safetensors")


@pytest.mark.parametrize("mixer", MIXERS)
def test_exported_mixer_weights_load_by_their_names(mixer, tmp_path):
    config, weights = export_one_step(mixer, tmp_path)
    for entry in config["layer_mixers"]:
        layer = layers.layer_from_export(entry["params"], config["d_model"])
        prefix = f"blocks.{entry['layer']}.mixer."
        exported = {name[len(prefix):]: t for name, t in weights.items() if name.startswith(prefix)}
        assert sorted(exported) == sorted(name for name, _ in layer.named_parameters())
        layer.load_state_dict(exported, strict=True)
        for name, parameter in layer.named_parameters():
            assert torch.equal(parameter.detach(), exported[name].to(parameter.dtype)), name
        x = torch.randn(2, 12, config["d_model"])
        y = layer(x)
        assert y.shape == x.shape and torch.isfinite(y).all()


def test_bla_layer_decode_steps_equal_its_forward():
    layer = layers.BlaLayer(16, 4, windows=[8, 12], slots=4, chunk=4).double()
    x = torch.randn(2, 15, 16, dtype=torch.float64)
    full = layer(x)
    state = layer.initial_state(2, torch.float64)
    for t in range(15):
        y, state = layer.step(x[:, t], state)
        torch.testing.assert_close(y, full[:, t], rtol=1e-10, atol=1e-10)


def test_bla_layer_with_slots_equal_to_window_is_the_swa_layer_without_rope():
    bla = layers.BlaLayer(16, 2, windows=[6], slots=6).double()
    swa = layers.AttentionLayer(16, 2, window=6, rope=False).double()
    swa.load_state_dict(bla.state_dict())
    x = torch.randn(1, 20, 16, dtype=torch.float64)
    torch.testing.assert_close(bla(x), swa(x), rtol=1e-9, atol=1e-9)


def test_an_unknown_mixer_type_is_named():
    with pytest.raises(ValueError, match=r"^unknown mixer type 'lstm'"):
        layers.layer_from_export({"type": "lstm"}, 16)


def small_layers():
    """One small layer of every mixer (float64), with the options that change the decode path."""
    return {
        "attention": layers.AttentionLayer(16, 2, window=0),
        "swa": layers.AttentionLayer(16, 2, window=5),
        "bla": layers.BlaLayer(16, 4, windows=[8, 12], slots=4, chunk=4, rope=True),
        "gatedfwa": layers.GatedFwaLayer(16, 2, window=6, block=4),
        "gla": layers.GlaLayer(16, 2, gate_rank=4, chunk=8),
        "gsa": layers.GsaLayer(16, 2, slots=4, chunk=8),
        "mamba2": layers.Mamba2Layer(16, expand=2, d_state=4, head_dim=8, ngroups=2, conv_kernel=3, chunk=8),
    }


@pytest.mark.parametrize("form", ["torch_ops", "naive"])
@pytest.mark.parametrize("mixer", MIXERS)
def test_every_layer_decodes_its_forward_with_either_op_form(mixer, form):
    """step() token by token gives forward()'s outputs, on torch.ops.bla and on the plain PyTorch forms, and the
    two forms give the same forward."""
    from bla_train import forms
    layer = small_layers()[mixer].double()
    x = torch.randn(2, 13, 16, dtype=torch.float64)
    forms.use("torch_ops")
    with torch.no_grad():
        reference = layer(x)
    forms.use(form)
    try:
        with torch.no_grad():
            torch.testing.assert_close(layer(x), reference, rtol=1e-9, atol=1e-9)
            state = layer.initial_state(2, torch.float64)
            for t in range(13):
                y, state = layer.step(x[:, t], state)
                torch.testing.assert_close(y, reference[:, t], rtol=1e-9, atol=1e-9)
    finally:
        forms.use("auto")
