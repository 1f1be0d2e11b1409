"""``metanlp evaluate RECIPE [--set key=value ...]``: every method on the same meta-test episodes."""

from metanlp.cli.recipe_args import recipe_verb

add_parser, main = recipe_verb(
    "evaluate", "evaluate", "score centroid / fine-tune / meta-learned init on the same meta-test episodes",
    "recipes/text_classification/clinc150_benchmark.yaml",
)  # fmt: skip
