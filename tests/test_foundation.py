"""The toolkit's foundation (`tokenizer.utils`): one root error, the CLI wrapper, masks and padding; the old
import paths keep working."""

import pytest
import torch

from tokenizer import AudioError, CodecError, ConfigError, ToolkitError
from tokenizer.utils.cli import run_cli
from tokenizer.utils.masking import length_mask, pad_right


def test_one_root_error_and_the_old_name_is_the_same_class():
    from data_prep.errors import CorpusError
    from tts.errors import TTSError

    assert CodecError is ToolkitError
    for kind in (AudioError, ConfigError, CorpusError, TTSError):
        assert issubclass(kind, ToolkitError)

    def bad():
        raise TTSError("text 'x' has no phonemes")

    assert run_cli("prog", bad) == 2


def test_old_import_paths_still_work_with_a_deprecation_warning():
    import importlib
    import sys

    for name in ("tokenizer.cli", "tokenizer.errors", "tokenizer.modules.masking"):
        sys.modules.pop(name, None)
        with pytest.warns(DeprecationWarning, match=f"{name} moved to tokenizer.utils"):
            importlib.import_module(name)
    import tokenizer.cli as old_cli
    import tokenizer.errors as old_errors
    import tokenizer.loading as loading
    import tokenizer.modules.masking as old_masking
    import tokenizer.utils.cli as cli

    assert old_errors.CodecError is ToolkitError and old_errors.AudioError is AudioError
    assert old_cli.run_cli is run_cli and loading.quiet_progress_bars is cli.quiet_progress_bars
    assert old_masking.length_mask is length_mask


def test_pad_right_last_axis_keeps_values_and_lengths():
    a, b = torch.arange(6, dtype=torch.uint8).view(2, 3), torch.ones(2, 1, dtype=torch.uint8)
    out, lengths = pad_right([a, b], value=9, dtype=torch.long)
    assert out.dtype == torch.long and out.shape == (2, 2, 3) and lengths.tolist() == [3, 1]
    assert torch.equal(out[0], a.long()) and torch.equal(out[1], torch.tensor([[1, 9, 9], [1, 9, 9]]))
    assert torch.equal(length_mask(lengths, 3), torch.tensor([[True, True, True], [True, False, False]]))


def test_pad_right_first_axis_and_min_length():
    x, y = torch.randn(4, 5), torch.randn(2, 5)
    out, lengths = pad_right([x, y], value=0.5, dim=0)
    assert out.shape == (2, 4, 5) and out.dtype == x.dtype and lengths.tolist() == [4, 2]
    assert torch.equal(out[1, :2], y) and bool((out[1, 2:] == 0.5).all())
    empty, n = pad_right([torch.zeros(0, dtype=torch.long)] * 2, min_length=1)
    assert empty.shape == (2, 1) and n.tolist() == [0, 0]
    with pytest.raises(ValueError, match="no tensors"):
        pad_right([])
