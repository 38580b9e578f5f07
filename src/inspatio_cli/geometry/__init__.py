"""Stage-neutral geometry: rigid transforms, rotations and quaternions (:mod:`.se3`), similarity transforms
and their fits (:mod:`.sim3`).

Both the depth stage (chaining windows, post-processing poses) and the camera stage (trajectories, render
cameras) use these; keeping them here lets neither stage import the other for arithmetic.
"""
