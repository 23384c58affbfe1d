"""One detector per module; each module exposes its class as ``DETECTOR``.

The registry (:mod:`tadkit.models`) finds a detector by importing the module of that name,
so adding ``<name>.py`` here is all it takes to add a method.
"""
