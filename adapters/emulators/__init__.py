"""Local emulators of the services Handoff talks to, served over HTTP to the real SDKs.

Each emulator is a small aiohttp application with in-memory state. They share the request recorder
and the scripted faults in :mod:`adapters.emulators.base`.
"""
