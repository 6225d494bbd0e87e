"""Dexterous grasping: robosuite's Inspire hand on a floating wrist, a table and objects (``scene``), the
batched environment (``env``), grasp poses from object geometry (``grasp``) and G-PAYN's scripted
demonstrator (``demonstrator``)."""
