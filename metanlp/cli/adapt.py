"""``metanlp adapt RECIPE [--set key=value ...]``: adapt a meta-learned init to a new task from a few examples."""

from metanlp.cli.recipe_args import recipe_verb

add_parser, main = recipe_verb(
    "adapt", "adapt", "adapt a meta-learned init to new categories (or a new language pair) from a few examples",
    "recipes/text_classification/text_new_categories.yaml",
)  # fmt: skip
