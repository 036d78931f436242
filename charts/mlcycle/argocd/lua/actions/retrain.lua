-- The operator starts the retrain template once per new value of this annotation.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["mlcycle.io/retrain-requested"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
