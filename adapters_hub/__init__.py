"""The adapter package format and the hubs it lives on. No model code lives here (nothing imports
``anymal_host``): what the checks need from the host (installed modalities, the LLM's hidden size and
fingerprint, expected tensor specs) is passed in as arguments."""

from .checks import (
    CheckedPackage, TensorSpec, check_compatibility, check_member_name, check_package, check_weights_header,
    plugin_package_name, read_package_config, scan_package_files, tensor_specs,
)
from .config import SCHEMA_VERSION, AdapterConfig, EncoderRef, LLMRef, ProjectorSpec
from .errors import (
    AdapterPackageError, AdapterPackageWarning, ConfigFromNewerVersionWarning, FingerprintMismatchError,
    ForcedLoadWarning, HiddenSizeMismatchError, HubError, HubOfflineWarning, InvalidRefError,
    ModalityPluginMissingError, PackageCorruptError, PackageFileMissingError, PackageTooLargeError,
    RepoNotFoundError, SchemaVersionError, TensorMismatchError, UnsafePackageError,
)
from .errors import HubFeatureUnsupportedError, HubServerError, HubUnreachableError
from .folder_hub import FolderHub
from .hf_hub import HFHub
from .hub import AdapterSummary, Hub, Published, RepoInfo
from .layout import (
    CONFIG_NAME, DEFAULT_LIMITS, LORA_DIR, README_NAME, WEIGHTS_NAME, PackageLimits,
)
from .package import load_adapter_package, read_checked_weights, save_adapter_package, weights_metadata
from .refs import AdapterRef, is_bare_repo_id, parse_destination, parse_ref
from .resolve import hub_for, hub_from_spec, resolve
from .schema import ANYMAL_VERSION, parse_config

__all__ = [
    # config
    "SCHEMA_VERSION", "ANYMAL_VERSION", "AdapterConfig", "EncoderRef", "LLMRef", "ProjectorSpec", "parse_config",
    # package format
    "CONFIG_NAME", "WEIGHTS_NAME", "LORA_DIR", "README_NAME", "PackageLimits", "DEFAULT_LIMITS",
    "save_adapter_package", "load_adapter_package", "read_checked_weights", "weights_metadata",
    # checks
    "TensorSpec", "CheckedPackage", "check_package", "check_compatibility", "check_weights_header",
    "check_member_name", "scan_package_files", "read_package_config", "tensor_specs", "plugin_package_name",
    # refs and hubs
    "AdapterRef", "parse_ref", "parse_destination", "is_bare_repo_id", "Hub", "AdapterSummary", "RepoInfo",
    "Published", "FolderHub", "HFHub", "hub_for", "hub_from_spec", "resolve",
    # errors and warnings
    "AdapterPackageError", "PackageFileMissingError", "PackageCorruptError", "UnsafePackageError",
    "PackageTooLargeError", "SchemaVersionError", "ModalityPluginMissingError", "HiddenSizeMismatchError",
    "FingerprintMismatchError", "TensorMismatchError", "InvalidRefError", "HubError", "RepoNotFoundError",
    "AdapterPackageWarning", "ConfigFromNewerVersionWarning", "ForcedLoadWarning", "HubOfflineWarning",
    "HubUnreachableError", "HubServerError", "HubFeatureUnsupportedError",
]
