module github.com/iommap/iommap

go 1.23.0

require (
	github.com/okeuday/erlang_go/v2 v2.0.7
	golang.org/x/sys v0.35.0
)
