-- While serving, a rollout of a new version decides: walking its steps is Progressing, waiting for a manual
-- promote is Suspended, aborted (traffic back on the previous version) is Degraded, as for Argo Rollouts.
-- A fixed canary (spec.canary) is a steady state: Healthy.
local hs = health(obj, {Pending = "Progressing", Loading = "Progressing", Ready = "Healthy", Failed = "Degraded"})
local rollout = obj.status and obj.status.rollout
if hs.status ~= "Healthy" or rollout == nil then
  return hs
end
local states = {Progressing = "Progressing", Paused = "Suspended"}
local aborted = condition(obj, "RolloutAborted")
if rollout.phase == "Aborted" and aborted ~= nil and aborted.status == "True" then
  states.Aborted = "Degraded"
end
if states[rollout.phase] ~= nil then
  hs.status = states[rollout.phase]
  hs.message = rollout.message or ("rollout of " .. rollout.candidate .. " at " .. (rollout.weight or 0) .. "%")
end
return hs
