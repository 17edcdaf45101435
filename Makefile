# Convenience targets; scripts/dev.sh does the work (and installs packages).
.PHONY: run build test sanitize fuzz clean
run:
	scripts/dev.sh run
build:
	scripts/dev.sh build
test:
	scripts/dev.sh test
sanitize:
	scripts/dev.sh sanitize
fuzz:
	scripts/dev.sh fuzz
clean:
	rm -rf build build-asan build-fuzz
