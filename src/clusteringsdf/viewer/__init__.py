"""Interactive 3D viewer of a trained run in the browser (``clusteringsdf view --run RUN``).

Two modules:

* :mod:`.run_access`: the only place that calls into the model, inference and data code. It
  turns a run folder into plain arrays (meshes, cameras, objects, rendered pictures) behind a
  narrow interface, :func:`~.run_access.open_run` -> :class:`~.run_access.RunAccess`.
* :mod:`.server`: the viser scene, GUI and callbacks, built only on that interface.

viser is an optional dependency (``pip install -e ".[viewer]"``); nothing here imports it at
module level.
"""
