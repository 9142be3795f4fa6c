"""The names of a sample batch's columns (RLlib's ``Columns``), as env runners write them."""


class Columns:
    OBS = "obs"
    NEXT_OBS = "next_obs"
    ACTIONS = "actions"
    ACTIONS_RAW = "actions_raw"
    REWARDS = "rewards"
    TERMINATEDS = "terminateds"
    TRUNCATEDS = "truncateds"
    ACTION_LOGP = "action_logp"
    ACTION_DIST_INPUTS = "action_dist_inputs"
    VF_PREDS = "vf_preds"
    ADVANTAGES = "advantages"
    VALUE_TARGETS = "value_targets"
