-- retrain: start the spec.retrain template now; promote / abort: the rollout or canary in progress.
local actions = {}
local status = obj.status or {}
local rolling = status.canaryModelVersion ~= nil or
  (status.rollout ~= nil and (status.rollout.phase == "Progressing" or status.rollout.phase == "Paused"))
actions["retrain"] = {["disabled"] = obj.spec.retrain == nil}
actions["promote"] = {["disabled"] = not rolling}
actions["abort"] = {["disabled"] = not rolling}
return actions
