"""Utilities mirroring ``ray.util``: scheduling strategies and placement groups."""
from juno.util import scheduling_strategies
from juno.util.placement_group import (PlacementGroup, get_current_placement_group, get_placement_group,
                                       placement_group, placement_group_table, remove_placement_group)

__all__ = ["scheduling_strategies", "PlacementGroup", "get_current_placement_group", "get_placement_group",
           "placement_group", "placement_group_table", "remove_placement_group"]
