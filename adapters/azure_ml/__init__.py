"""Azure Machine Learning: the ``MLClient`` factory (cloud or local emulator) and model signatures.

``azure.ai.ml`` costs about 3 s and 110 MB to import, so nothing here imports it at module level.
"""

from adapters.azure_ml.client_factory import (
    EMULATOR_CLOUD,
    EMULATOR_HOST,
    EMULATOR_STORAGE_SUFFIX,
    AzureMLConnection,
    EmulatorCredential,
    RewriteTransport,
    as_connection,
    build_credential,
    build_ml_client,
    build_transport,
)

__all__ = [
    "EMULATOR_CLOUD",
    "EMULATOR_HOST",
    "EMULATOR_STORAGE_SUFFIX",
    "AzureMLConnection",
    "EmulatorCredential",
    "RewriteTransport",
    "as_connection",
    "build_credential",
    "build_ml_client",
    "build_transport",
]
