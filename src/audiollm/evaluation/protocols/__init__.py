"""Evaluation protocols: the published ways a benchmark is scored, next to our defaults.

Our default metrics (each task's ``score``) normalise text the same way everywhere so one
table reads consistently. Papers report numbers computed their own way; to compare with
them, a protocol reproduces one benchmark's scoring exactly:

=============  ======================  =====================================================
protocol       rows (task; dataset)     metrics
=============  ======================  =====================================================
mullama        qa; musicqa              MU-LLaMA's BLEU (character n-grams!), BLEU-4, METEOR,
                                        ROUGE-L recall, BERTScore recall — each beside a
                                        shuffled-reference baseline
librispeech    asr; librispeech         WER per ``subset`` (test-clean, test-other, …) after an
                                        English normaliser
mtt            tagging; magnatagatune   macro ROC-AUC and PR-AUC over the tag vocabulary
clotho         caption; clotho          BLEU-1/4, METEOR, ROUGE-L (COCO's β = 1.2), CIDEr-D
=============  ======================  =====================================================

Selection (``evaluate(..., protocol=...)``, CLI ``--protocol``): ``auto`` (the default)
applies to each row the protocol of its dataset — the row's ``dataset`` field, which
``audiollm data manifest`` writes, else the prefix of its ``id`` (``musicqa-…``) — and no
protocol to rows of other datasets (GTZAN's protocol is accuracy, which the default
tagging score already is). ``default`` applies none. Naming protocols
(``mullama,clotho``) applies each to *every* row of its task, whatever the dataset, and
fails when a named protocol finds no such rows. The default metrics are always reported too.

Results go into the same table and JSON as the default metrics, under keys ``mullama``,
``librispeech/<subset>``, ``mtt``, ``clotho``; baselines appear as ``shuffled_ref/<metric>``.
A protocol may add notes (which BERTScore model was used, how tags were scored) that the
CLI prints under the table and the JSON stores under ``notes``.
"""

# Importing a module registers what it defines.
from audiollm.evaluation.protocols import clotho, librispeech, mtt, mullama  # noqa: F401
from audiollm.evaluation.protocols.base import (
    KNOWN_DATASETS,
    PROTOCOLS,
    Protocol,
    ProtocolContext,
    ProtocolResult,
    Row,
    dataset_of,
    parse_protocols,
    register_protocol,
    run_protocols,
    select,
)

__all__ = [
    "PROTOCOLS",
    "KNOWN_DATASETS",
    "Protocol",
    "ProtocolContext",
    "ProtocolResult",
    "Row",
    "dataset_of",
    "parse_protocols",
    "register_protocol",
    "run_protocols",
    "select",
]
