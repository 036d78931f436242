-- retrain: start the spec.retrain template now; promote / abort: the canary in progress.
local actions = {}
local rolling = obj.status ~= nil and obj.status.canaryModelVersion ~= nil
actions["retrain"] = {["disabled"] = obj.spec.retrain == nil}
actions["promote"] = {["disabled"] = not rolling}
actions["abort"] = {["disabled"] = not rolling}
return actions
