from nectar_audit.cli import main

main()
