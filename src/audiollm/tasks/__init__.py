"""Tasks: manifest row → (question, answer) text, and predictions → scores.

Importing this package registers every task in :data:`TASKS`; use :func:`get_task`.
"""

from audiollm.tasks.asr import ASR_QUESTIONS, ASRTask
from audiollm.tasks.audio_answer import (
    AudioAnswerOptions,
    TextToAudioTask,
    TextToSpeechTask,
)
from audiollm.tasks.base import (
    TASKS,
    Task,
    TaskOptions,
    get_task,
    register_task,
    row_label,
)
from audiollm.tasks.caption import CAPTION_QUESTIONS, CaptionTask
from audiollm.tasks.qa import QATask
from audiollm.tasks.tagging import TAGGING_QUESTIONS, TaggingTask, split_labels
from audiollm.tasks.text_to_midi import TextToMidiOptions, TextToMidiTask
from audiollm.tasks.transcription import TRANSCRIPTION_QUESTIONS, TranscriptionTask

__all__ = [
    "TASKS",
    "Task",
    "TaskOptions",
    "TextToMidiOptions",
    "get_task",
    "register_task",
    "row_label",
    "TAGGING_QUESTIONS",
    "ASR_QUESTIONS",
    "CAPTION_QUESTIONS",
    "TaggingTask",
    "ASRTask",
    "CaptionTask",
    "QATask",
    "TRANSCRIPTION_QUESTIONS",
    "TranscriptionTask",
    "TextToMidiTask",
    "TextToSpeechTask",
    "TextToAudioTask",
    "AudioAnswerOptions",
    "ContinuationTask",
    "split_labels",
]
