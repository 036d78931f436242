-- Ready while a canary takes part of the traffic is still a rollout in progress.
local hs = health(obj, {Pending = "Progressing", Loading = "Progressing", Ready = "Healthy", Failed = "Degraded"})
if hs.status == "Healthy" and obj.status.canaryModelVersion ~= nil then
  hs.status = "Progressing"
  hs.message = "Canary " .. obj.status.canaryModelVersion .. " is rolling out"
end
return hs
