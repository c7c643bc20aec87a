from dlclassics.cli import main

main()
