"""decode_audio: every form an `audio` cell comes in gives mono float32 at the clip's rate."""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile
import torch

from sousa_hf import SousaDataError, decode_audio


def _stereo(seconds=0.1, rate=44100):
    t = np.arange(int(seconds * rate)) / rate
    return np.stack([np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 880 * t)]).astype(np.float32)


def test_flac_bytes_downmix_to_mono():
    stereo = _stereo()
    buffer = io.BytesIO()
    soundfile.write(buffer, stereo.T, 44100, format="FLAC", subtype="PCM_24")
    array, rate = decode_audio({"bytes": buffer.getvalue(), "path": "x.flac"})
    assert rate == 44100 and array.dtype == np.float32 and array.ndim == 1
    np.testing.assert_allclose(array, stereo.mean(axis=0), atol=1e-5)


@pytest.mark.parametrize("layout", ["channels_first", "samples_first", "mono"])
def test_decoded_arrays_in_any_layout(layout):
    stereo = _stereo(rate=16000)
    array = {"channels_first": stereo, "samples_first": stereo.T, "mono": stereo.mean(axis=0)}[layout]
    mono, rate = decode_audio({"array": array.tolist(), "sampling_rate": 16000})
    assert rate == 16000 and mono.dtype == np.float32
    np.testing.assert_allclose(mono, stereo.mean(axis=0), atol=1e-6)


def test_a_torchcodec_style_decoder():
    stereo = _stereo(rate=48000)
    decoder = SimpleNamespace(get_all_samples=lambda: SimpleNamespace(data=torch.from_numpy(stereo), sample_rate=48000))
    mono, rate = decode_audio(decoder)
    assert rate == 48000
    np.testing.assert_allclose(mono, stereo.mean(axis=0), atol=1e-6)


def test_a_path_without_bytes(tmp_path):
    soundfile.write(tmp_path / "clip.wav", _stereo().T, 44100)
    mono, rate = decode_audio({"bytes": None, "path": str(tmp_path / "clip.wav")})
    assert rate == 44100 and mono.ndim == 1


def test_nothing_to_decode():
    with pytest.raises(SousaDataError, match="sample 's1' has no audio"):
        decode_audio(None, "s1")
    with pytest.raises(SousaDataError, match="its path '/nowhere.flac' cannot be read"):
        decode_audio({"bytes": None, "path": "/nowhere.flac"}, "s2")
