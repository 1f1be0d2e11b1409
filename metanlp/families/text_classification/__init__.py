"""Text classification: episodes of labelled texts, an encoder backbone with LoRA, a prototype-initialised head.

Modules: ``config`` (the ``text_classification`` recipe section), ``data`` (corpora, class splits, episodes),
``backbone`` (encoders from packaged weights), ``adapter`` (LoRA + head), ``family`` (the
:class:`~metanlp.core.protocols.TaskFamily`), ``anil`` / ``protonet`` (learners that need the embedding head),
``unsupervised`` (CACTUs tasks), ``smlmt`` (cloze tasks), ``multitask`` (the multi-task transfer baseline),
``setup`` (a run's pieces from a recipe), ``classifier`` (the :class:`FewShotClassifier` API), ``recipes/`` (the
scripts ``metanlp`` runs).
Importing this package registers the family and its learners; it imports nothing heavy.
"""

from metanlp.core.registry import FamilySpec, register_family, register_learner

_HERE = "metanlp.families.text_classification"

register_family(
    FamilySpec(
        name="text_classification",
        family=f"{_HERE}.family:TextClassificationFamily",
        recipes={
            "meta_train": f"{_HERE}.recipes.meta_train",
            "adapt": f"{_HERE}.recipes.adapt",
            "evaluate": f"{_HERE}.recipes.evaluate",
        },
        predict=f"{_HERE}.classifier:predict_records",
        checks=f"{_HERE}.checks:check_inputs",
        config_section=("text_classification", f"{_HERE}.config:TextClassificationConfig"),
        summary="N-way K-shot text classification (labels from a few examples per class)",
    )
)
register_learner("anil", f"{_HERE}.anil:ANIL")
register_learner("protonet", f"{_HERE}.protonet:ProtoNet")
