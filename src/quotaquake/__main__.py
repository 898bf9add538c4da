from quotaquake.cli import main

main()
