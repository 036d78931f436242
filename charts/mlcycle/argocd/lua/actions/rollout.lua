-- ACTION is "promote" (the candidate takes all traffic) or "abort" (traffic back to the serving version); the
-- operator acts once and removes the annotation.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["mlcycle.io/rollout-action"] = ACTION
return obj
