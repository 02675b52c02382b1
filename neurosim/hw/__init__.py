"""Hardware side of neurosim: profiles (YAML), layer-to-core mapping and the profiles table."""

from neurosim.hw.mapping import (  # noqa: F401
    LayerSize,
    Mapping,
    format_mapping,
    format_profiles_table,
    map_layers,
    mapping_to_dict,
    profile_to_dict,
    profiles_to_dict,
)
from neurosim.hw.profile import (  # noqa: F401
    Profile,
    bundled_profiles,
    load_profile,
)
