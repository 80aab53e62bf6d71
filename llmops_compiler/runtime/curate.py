"""PLACEHOLDER"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Final

# --------------------------------------------------------------------------------------------------
# PII (presidio, offline)
# --------------------------------------------------------------------------------------------------

#: Entities presidio's pattern recognizers find without a trained NER model. Names of people and places
#: need spaCy's NER (``en_core_web_lg``), which cannot be downloaded here: they are not detected. IP
#: addresses are left out by default: a support answer naming a router's admin address is not personal data.
DEFAULT_PII_ENTITIES: Final = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "US_ITIN",
    "US_PASSPORT",
    "US_DRIVER_LICENSE",
    "US_BANK_NUMBER",
    "UK_NHS",
    "MEDICAL_LICENSE",
    "CRYPTO",
)
PII_MIN_SCORE: Final = 0.4
"""Presidio's confidence a finding needs to count: 0.4 is the base score of its phone-number recognizer, the
lowest of the recognizers whose matches are checked (Luhn, IBAN checksum, phonenumbers); weaker bare-digit
guesses (bank account, passport, licence numbers at 0.01-0.05) count only when a context word such as
"account" or "passport" next to them raises them to it."""


class PiiDetector:
    """Presidio's analyzer with its predefined pattern recognizers on a blank spaCy English pipeline (no model
    download: tokens only, each token's lower-cased text as its lemma so that presidio's context words still
    raise scores), and its anonymizer for scrubbing.

    ``find(text)`` returns presidio ``RecognizerResult`` s (``entity_type``, ``start``, ``end``, ``score``) of
    ``entities`` scoring at least ``min_score``; ``scrub(text)`` replaces each with ``<ENTITY_TYPE>``.
    """

    def __init__(self, entities: Sequence[str] = DEFAULT_PII_ENTITIES, min_score: float = PII_MIN_SCORE) -> None:
        _offline_tldextract()
        import spacy
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import SlimSpacyNlpEngine
        from presidio_anonymizer import AnonymizerEngine
        from spacy.language import Language

        if not Language.has_factory("llmops_lowercase_lemma"):

            @Language.component("llmops_lowercase_lemma")
            def _lowercase_lemma(doc: Any) -> Any:
                for token in doc:
                    token.lemma_ = token.lower_
                return doc

        nlp = spacy.blank("en")
        nlp.add_pipe("llmops_lowercase_lemma")
        engine = SlimSpacyNlpEngine(models=[{"lang_code": "en", "model_name": "blank"}], auto_download=False)
        engine.nlp = {"en": nlp}  # type: ignore[assignment]  # loaded: presidio never calls load() (which would download a model)
        registry = RecognizerRegistry(supported_languages=["en"])
        registry.load_predefined_recognizers(nlp_engine=engine, languages=["en"])
        if any(getattr(recognizer, "name", None) == "SpacyRecognizer" for recognizer in registry.recognizers):
            registry.remove_recognizer("SpacyRecognizer")  # NER from the NLP engine: none on a blank pipeline
        known = {entity for recognizer in registry.recognizers for entity in recognizer.supported_entities}
        unknown = sorted(set(entities) - known)
        if unknown:
            raise ValueError(f"unknown PII entities {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        self.entities = list(entities)
        self.min_score = min_score
        self.analyzer = AnalyzerEngine(nlp_engine=engine, registry=registry, supported_languages=["en"])
        self.anonymizer = AnonymizerEngine()  # type: ignore[no-untyped-call]

    def find(self, text: str) -> list[Any]:
        if not text.strip():
            return []
        results = self.analyzer.analyze(text, language="en", entities=self.entities)
        return [r for r in results if r.score >= self.min_score]

    def scrub(self, text: str) -> tuple[str, list[Any]]:
        """``text`` with every finding replaced by ``<ENTITY_TYPE>``, and the findings."""
        findings = self.find(text)
        if not findings:
            return text, []
        return self.anonymizer.anonymize(text=text, analyzer_results=findings).text, findings


def _offline_tldextract() -> None:
    """Presidio's e-mail recognizer asks tldextract for the public suffix list, which downloads it on first use
    (and logs a traceback when it cannot): use the snapshot tldextract ships, never the network."""
    os.environ["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""
    import tldextract
    import tldextract.tldextract as module

    if getattr(module.TLD_EXTRACTOR, "suffix_list_urls", ()):
        module.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
