-- ACTION is "promote" (the canary takes all traffic) or "abort" (traffic back to the main version).
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["mlcycle.io/rollout-action"] = ACTION
return obj
