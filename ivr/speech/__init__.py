"""Offline speech recognition of the tapped audio (Vosk).

- models.py: find, verify and fetch models (`ivr models ...`)
- grammar.py: phrase-spotting grammars fitted to a model's vocabulary
- vad.py: voice-activity gating (webrtcvad)
- recognizer.py: the shared model, one stream's decoder, Utterance
- stage.py: SpeechStage, which the tap server feeds
"""

from .grammar import Grammar, PhraseFit, build_grammar
from .models import ModelError, installed_models, models_command, resolve_model
from .recognizer import (
    PHRASES,
    TRANSCRIPT,
    RecognitionMode,
    SpeechModel,
    StreamDecoder,
    Utterance,
    VoiceActivity,
    Word,
    transcribe,
)
from .stage import SpeechStage, StageStats
from .vad import VadGate, VadSettings

__all__ = [
    "Grammar",
    "PhraseFit",
    "build_grammar",
    "ModelError",
    "installed_models",
    "models_command",
    "resolve_model",
    "PHRASES",
    "TRANSCRIPT",
    "RecognitionMode",
    "SpeechModel",
    "StreamDecoder",
    "Utterance",
    "VoiceActivity",
    "Word",
    "transcribe",
    "SpeechStage",
    "StageStats",
    "VadGate",
    "VadSettings",
]
