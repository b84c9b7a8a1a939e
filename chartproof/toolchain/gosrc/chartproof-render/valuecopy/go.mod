module chartproof.local/tools/valuecopy

go 1.26.0

require github.com/mitchellh/copystructure v1.2.0

require github.com/mitchellh/reflectwalk v1.0.2 // indirect
