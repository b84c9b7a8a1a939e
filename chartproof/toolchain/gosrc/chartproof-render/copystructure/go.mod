module github.com/mitchellh/copystructure

go 1.26.0

require chartproof.local/tools/valuecopy v0.0.0

replace chartproof.local/tools/valuecopy => ../valuecopy
