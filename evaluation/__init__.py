"""Evaluation of codecs and of TTS output: quality metrics, rate measures, ASR / speaker backends,
classic baselines and the report writers behind `evaluate-codec` and `evaluate-tts`.

    from evaluation import compute_metrics, parse_baseline, bd_rate
    scores = compute_metrics(reference, degraded, 16000, ["pesq_wb", "stoi", "mel_distance"])
    opus = parse_baseline("opus:6"); rt = opus.roundtrip(audio_16k)   # rt.audio, rt.bits

Heavy libraries (pesq, visqol, speechmos, faster-whisper, resemblyzer, librosa, matplotlib) are
imported only when the metric or backend that needs them is used.
"""

from .baselines import Codec2Baseline, OpusBaseline, align_to_reference, estimate_delay, parse_baseline
from .metrics import (DEFAULT_CODEC_METRICS, METRICS, MetricScores, MetricSpec, Undefined, UTMOSPredictor,
                      compute_metrics, dnsmos, estoi, mel_distance, metric_columns, pesq_nb, pesq_wb, si_sdr,
                      speaker_similarity, stft_distance, stoi, visqol, vuv_f1)
from .rate import (CodebookStats, bd_metric, bd_rate, codebook_histograms, codebook_stats, huffman_code_lengths,
                   mean_huffman_length, normalized_entropy, real_time_factor)
from .systems import RoundTrip, SpeechCodec, TokenizerCodec, operating_points

__all__ = [
    "Codec2Baseline", "OpusBaseline", "align_to_reference", "estimate_delay", "parse_baseline",
    "DEFAULT_CODEC_METRICS", "METRICS", "MetricScores", "MetricSpec", "Undefined", "UTMOSPredictor",
    "compute_metrics", "dnsmos", "estoi",
    "mel_distance", "metric_columns", "pesq_nb", "pesq_wb", "si_sdr", "speaker_similarity", "stft_distance", "stoi",
    "visqol", "vuv_f1", "CodebookStats", "bd_metric", "bd_rate", "codebook_histograms", "codebook_stats",
    "huffman_code_lengths", "mean_huffman_length", "normalized_entropy", "real_time_factor", "RoundTrip",
    "SpeechCodec", "TokenizerCodec", "operating_points",
]
