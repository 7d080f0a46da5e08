// Entry point of the `kmem` command.
return Kmem.Cli.KmemCli.Run(args, Console.Out, Console.Error);
