"""Detection stages: ``predict`` (sliding-window scores), ``locate`` (event positions) and
``pipeline`` (``detect``). Import the submodules; nothing is imported here so that
``import minidet.detection`` stays light."""
