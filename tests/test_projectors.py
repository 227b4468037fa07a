import pytest
import torch

from anymal_host import ModalityAdapter
from anymal_host.projectors import LinearProjector, MLPProjector, PerceiverResampler

from .conftest import toy_config


@pytest.mark.parametrize("cls", [LinearProjector, MLPProjector])
def test_per_step_projectors_keep_steps_and_mask(cls):
    torch.manual_seed(0)
    proj = cls(16, 24)
    features, mask = torch.randn(3, 10, 16), torch.ones(3, 10, dtype=torch.bool)
    mask[1, 6:] = False
    tokens, token_mask = proj(features, mask)
    assert tokens.shape == (3, 10, 24)
    assert torch.equal(token_mask, mask)


def test_mlp_is_two_layers_with_gelu():
    layers = list(MLPProjector(16, 24, hidden_dim=32).proj)
    assert [type(l).__name__ for l in layers] == ["Linear", "GELU", "Linear"]
    assert layers[0].out_features == 32 and layers[2].out_features == 24


def test_perceiver_gives_fixed_token_count_for_any_length():
    torch.manual_seed(0)
    proj = PerceiverResampler(16, 24, num_tokens=5, depth=2, heads=4).eval()
    for steps in (1, 7, 300):
        tokens, token_mask = proj(torch.randn(2, steps, 16), torch.ones(2, steps, dtype=torch.bool))
        assert tokens.shape == (2, 5, 24) and token_mask.all()


def test_perceiver_padding_does_not_change_result():
    torch.manual_seed(0)
    proj = PerceiverResampler(16, 24, num_tokens=4, depth=2, heads=4).eval()
    short = torch.randn(1, 6, 16)
    alone, _ = proj(short, torch.ones(1, 6, dtype=torch.bool))
    padded = torch.cat([short, torch.randn(1, 9, 16) * 100], dim=1)
    mask = torch.zeros(1, 15, dtype=torch.bool)
    mask[0, :6] = True
    batched, _ = proj(padded, mask)
    assert torch.allclose(alone, batched, atol=1e-5)


def test_perceiver_refuses_bad_sizes():
    with pytest.raises(ValueError, match="not divisible by heads"):
        PerceiverResampler(16, 30, num_tokens=4, heads=8)
    proj = PerceiverResampler(4, 8, num_tokens=2, heads=2, max_steps=10)
    with pytest.raises(ValueError, match="raise max_steps"):
        proj(torch.randn(1, 11, 4), torch.ones(1, 11, dtype=torch.bool))


@pytest.mark.parametrize("projector", ["linear", "mlp", "perceiver"])
def test_same_seed_same_adapter(tiny, registry, projector):
    options = {"heads": 4} if projector == "perceiver" else {}
    config = toy_config(tiny, projector=projector, **options)
    outputs = []
    for _ in range(2):
        torch.manual_seed(123)
        adapter = ModalityAdapter.from_config(config, registry).eval()
        outputs.append(adapter.encode([adapter.modality.example_input()])[0])
    assert torch.equal(outputs[0], outputs[1])


def test_gradients_reach_only_trainable_parts(tiny, registry):
    config = toy_config(tiny)
    config.encoder.trainable = False
    adapter = ModalityAdapter.from_config(config, registry)
    adapter.set_trainable()
    signals, mask = adapter.modality.encode_sources([adapter.modality.example_input()])
    tokens, _ = adapter(signals, mask)
    embeds = tiny.embed(torch.tensor([[1, 2, 3]]))
    loss = tiny.forward(torch.cat([tokens, embeds], 1), torch.ones(1, tokens.shape[1] + 3, dtype=torch.long),
                        labels=torch.tensor([[-100] * tokens.shape[1] + [4, 5, 6]])).loss
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in adapter.projector.parameters())
    assert all(p.grad is None for p in adapter.encoder.parameters())
    assert all(p.grad is None for p in tiny.model.parameters())


def test_encoder_width_mismatch_is_explained(tiny, registry):
    config = toy_config(tiny)
    config.projector.in_dim = 5
    with pytest.raises(ValueError, match="set projector.in_dim to 8"):
        ModalityAdapter.from_config(config, registry)
