"""Running notebooks in batch: one notebook (``runner``), a grid of points (``sweep``) and the committed
campaign (``campaign``)."""
