"""Query a trained run from Python: its objects, the SDF and the object at points, a render from a
new camera and the meshes, all in the scene's world frame (metres).

    python examples/query_run.py runs/demo
"""

import sys

import numpy as np

import clusteringsdf

run = clusteringsdf.load_run(sys.argv[1], device="auto")

# the objects: id (as in renders and meshes), class, box and centroid (metres), label agreement
for obj in run.objects:
    print(f"object {obj.id:3d} {obj.class_name:14s} centroid {np.round(obj.centroid, 2)} size {np.round(obj.box_max - obj.box_min, 2)} score {obj.score:.2f}")

# points: signed distance (metres, negative inside), object id (0: background) and class
points = np.array([obj.centroid for obj in run.objects] or [[0.0, 0.0, 0.0]])
print("sdf", np.round(run.sdf(points), 3), "objects", run.object_ids(points), "classes", run.classes_at(points))

# a render from a camera 0.3 m behind the first object's centroid, looking at it along world +y
target = points[0]
pose = np.eye(4)  # OpenCV camera-to-world: x right, y down, z forward
pose[:3, :3] = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]).T  # z (forward) = world +y, y (down) = world -z
pose[:3, 3] = target - 0.3 * pose[:3, 2]
k = np.array([[100.0, 0.0, 63.5], [0.0, 100.0, 47.5], [0.0, 0.0, 1.0]])
view = run.render(k, pose, (96, 128), fast=True)
print("render", view.rgb.shape, "depth range (m)", np.round([view.depth.min(), view.depth.max()], 2), "instances", np.unique(view.instance))

# meshes as trimesh objects (extracted into the run folder the first time)
for mesh in run.meshes():
    print(f"mesh {mesh.metadata['id']:3d} {mesh.metadata['class_name']:14s} {len(mesh.faces)} faces, area {mesh.area:.3f} m^2")
