"""Adapters: everything that touches the outside world, one package per outside thing."""
