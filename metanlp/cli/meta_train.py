"""``metanlp meta-train RECIPE [--set key=value ...]``: meta-train a LoRA init across tasks (FOMAML by default).

Multi-process: ``accelerate launch --num_processes N -m metanlp meta-train RECIPE`` (GPUs), or N CPU processes with
``ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes N -m metanlp meta-train RECIPE``.
"""

from metanlp.cli.recipe_args import recipe_verb

add_parser, main = recipe_verb(
    "meta-train", "meta_train", "meta-train a LoRA init across tasks (FOMAML by default)",
    "recipes/text_classification/text_meta_train.yaml",
)  # fmt: skip
