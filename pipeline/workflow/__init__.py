"""Recipe logic: the stages that ``recipes/*/run.py`` call, and the stage runner they share."""
